//! MariaDB -> log -> PostgreSQL with `tributary run` and
//! examples/mariadb-to-postgres.yaml as shipped: the PostgreSQL tables end
//! equal to the MariaDB ones, row by row (values printed alike on both
//! sides), through a snapshot, inserts, updates, a key change, deletes, a
//! column added mid-stream, and a SIGKILL with changes made while down.

use mysql_async::prelude::Queryable as _;
use tributary_tests::mysql::MyDb;
use tributary_tests::pg::TestDb;

use crate::common;

async fn maria_rows(db: &mut MyDb) -> Vec<String> {
    let extra = if db.has_column("customers", "extra").await {
        "extra"
    } else {
        "NULL"
    };
    db.conn
        .query(format!(
            "SELECT CONCAT_WS('|', id, name, CAST(balance AS CHAR), DATE_FORMAT(since, '%Y-%m-%d'),
                    DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f'), flags, kind, CAST(big AS CHAR),
                    LOWER(HEX(raw)), note, CAST(t AS CHAR), {extra})
               FROM customers ORDER BY id"
        ))
        .await
        .unwrap_or_default()
}

async fn pg_rows(db: &TestDb) -> Vec<String> {
    let has_extra = db
        .client
        .query(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'extra'",
            &[],
        )
        .await
        .map(|r| !r.is_empty())
        .unwrap_or(false);
    let extra = if has_extra { "extra" } else { "NULL" };
    db.client
        .query(
            &format!(
                "SELECT concat_ws('|', id, name, balance::text, to_char(since, 'YYYY-MM-DD'),
                        to_char(updated, 'YYYY-MM-DD HH24:MI:SS.US'), flags, kind, big::text,
                        encode(raw, 'hex'), note,
                        CASE WHEN t IS NOT NULL THEN
                          (CASE WHEN t < interval '0' THEN '-' ELSE '' END) ||
                          lpad(floor(extract(epoch from abs_t(t)) / 3600)::bigint::text, 2, '0') || ':' ||
                          to_char(abs_t(t), 'MI:SS') END,
                        {extra})
                   FROM customers ORDER BY id"
            ),
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_stays_equal() {
    let mut src = MyDb::new("mypg").await;
    let dst = TestDb::new("mypg").await;
    dst.exec(
        "CREATE FUNCTION abs_t(i interval) RETURNS interval LANGUAGE sql IMMUTABLE
               AS $$ SELECT CASE WHEN i < interval '0' THEN -i ELSE i END $$",
    )
    .await;
    src.exec(
        "CREATE TABLE customers (
             id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, balance DECIMAL(12,2), since DATE,
             updated DATETIME(6), flags SET('a','b','c'), kind ENUM('x','y'), big BIGINT UNSIGNED,
             raw VARBINARY(16), note TEXT, t TIME);
         INSERT INTO customers
           SELECT seq, CONCAT('customer ', seq), seq * 1.25, DATE '2024-01-01' + INTERVAL seq DAY,
                  TIMESTAMP '2024-02-29 12:00:00.000001' + INTERVAL seq HOUR,
                  IF(seq % 2, 'a,c', ''), IF(seq % 3, 'x', 'y'), 18446744073709551615 - seq,
                  UNHEX(MD5(seq)), IF(seq % 10 = 0, NULL, REPEAT('n', seq % 7)),
                  IF(seq % 4 = 0, '-01:30:00', '30:00:00')
             FROM seq_1_to_500;",
    )
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/mariadb-to-postgres.yaml");
    let env = [
        ("TRIBUTARY_DATA", data.path().display().to_string()),
        ("MYSQL_DATABASE", src.name.clone()),
        (
            "TRIBUTARY_SERVER_ID",
            (5_000_000 + std::process::id() % 1_000_000).to_string(),
        ),
        (
            "PG_URL",
            format!(
                "postgres://postgres@127.0.0.1:5432/{}?sslmode=disable",
                dst.name
            ),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let wait_equal = async |src: &mut MyDb, dst: &TestDb, what: &str| {
        let want = maria_rows(src).await;
        common::wait_same_rows(what, async || want.clone(), async || pg_rows(dst).await).await;
    };
    let child = common::start_with_env(&example, &env);
    wait_equal(&mut src, &dst, "snapshot").await;
    src.exec(
        "INSERT INTO customers (id, name) VALUES (1000, 'new');
         UPDATE customers SET name = 'renamed', balance = NULL, flags = 'b' WHERE id = 1;
         UPDATE customers SET id = 5000 WHERE id = 2;
         DELETE FROM customers WHERE id BETWEEN 10 AND 20;
         ALTER TABLE customers ADD COLUMN extra VARCHAR(10);
         UPDATE customers SET extra = 'added' WHERE id IN (1, 1000);",
    )
    .await;
    wait_equal(&mut src, &dst, "changes").await;
    common::kill(child);
    src.exec(
        "UPDATE customers SET note = 'while down' WHERE id % 50 = 7;
         DELETE FROM customers WHERE id = 3;
         INSERT INTO customers (id, name, extra) VALUES (6000, 'while down', 'x');",
    )
    .await;
    let child = common::start_with_env(&example, &env);
    wait_equal(&mut src, &dst, "after a SIGKILL").await;
    common::stop(child);
    src.drop_db().await;
    dst.drop_db().await;
}
