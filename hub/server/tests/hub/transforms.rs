//! A pipeline's `transforms:` with `tributary run`: PostgreSQL -> log ->
//! PostgreSQL, where on the way a filter keeps adults only, a column is
//! dropped, one renamed and one masked, and a second table is routed to a
//! topic of its own and unwrapped to its row state. The target ends as
//! the transforms say, through a snapshot, inserts, updates and deletes;
//! the log holds the routed topic and not the original one.

use tributary_tests::pg::{TestDb, rows};

use crate::common;

async fn wait_rows(db: &TestDb, sql: &str, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    common::wait_same_rows(sql, async || want.clone(), async || rows(db, sql).await).await;
}

fn pipeline(src: &TestDb, dst: &TestDb) -> String {
    format!(
        "{}{}\
         transforms:\n\
         \x20 - name: adults\n    kind: filter\n    topics: [pg.public.users]\n    where: \"age >= 18\"\n\
         \x20 - name: no-secrets\n    kind: drop_columns\n    topics: [pg.public.users]\n    columns: [secret]\n\
         \x20 - name: remarks\n    kind: rename_columns\n    topics: [pg.public.users]\n    rename: {{note: remark}}\n\
         \x20 - name: hide-email\n    kind: mask_columns\n    topics: [\"pg.public.*\"]\n    columns: [email]\n\
         \x20 - name: audit-topic\n    kind: route\n    topics: [pg.public.audit]\n    to: \"{{table}}-log\"\n\
         \x20 - name: rows\n    kind: unwrap\n    topics: [audit-log]\n\
         sinks:\n{}    batch_size: 100\n",
        common::log_yaml(Some(2)),
        common::pg_source_yaml(&src.name, "public.*"),
        common::pg_sink_yaml("replica", &dst.name, "[pg.public.users, audit-log]"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_shape_what_reaches_the_log_and_the_target() {
    let src = TestDb::new("xform_src").await;
    let dst = TestDb::new("xform_dst").await;
    src.exec(
            "CREATE TABLE users (id int PRIMARY KEY, email text, age int, note text, secret text);
             INSERT INTO users VALUES (1, 'ann@x', 30, 'first', 's1'), (2, 'bob@x', 12, 'kid', 's2'),
                                      (3, NULL, 45, NULL, 's3');
             CREATE TABLE audit (id int PRIMARY KEY, msg text NOT NULL);
             INSERT INTO audit VALUES (1, 'created'), (2, 'paid');",
        ).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(dir.path(), &pipeline(&src, &dst));
    let child = common::start(&file);

    let users = "SELECT t::text FROM users t ORDER BY id";
    let audit = "SELECT t::text FROM audit t ORDER BY id";
    // Snapshot: the kid is filtered out; secret is gone, note is remark,
    // email masked (NULL stays NULL).
    wait_rows(&dst, users, &["(1,****,30,first)", "(3,,45,)"]).await;
    wait_rows(&dst, audit, &["(1,created)", "(2,paid)"]).await;
    let columns = rows(
        &dst,
        "SELECT string_agg(column_name::text, ',' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_name = 'users'",
    )
    .await;
    assert_eq!(columns, ["id,email,age,remark"]);

    // Streaming: inserts, updates and deletes go through the same chain;
    // the unwrapped topic's deletes delete.
    src.exec(
        "INSERT INTO users VALUES (4, 'dee@x', 17, 'young', 's4'), (5, 'eve@x', 50, 'new', 's5');
             UPDATE users SET note = 'changed', secret = 'zzz' WHERE id = 1;
             UPDATE users SET age = 18 WHERE id = 4;
             DELETE FROM users WHERE id = 3;
             UPDATE audit SET msg = 'refunded' WHERE id = 2;
             DELETE FROM audit WHERE id = 1;
             INSERT INTO audit VALUES (3, 'shipped');",
    )
    .await;
    wait_rows(
        &dst,
        users,
        &[
            "(1,****,30,changed)",
            "(4,****,18,young)",
            "(5,****,50,new)",
        ],
    )
    .await;
    wait_rows(&dst, audit, &["(2,refunded)", "(3,shipped)"]).await;

    // The log: the routed topic, not the original one; its registered
    // value schema is the row, not the envelope.
    common::stop(child);
    let cli =
        |args: &[&str]| common::ok(&common::tributary_on(&dir.path().join("data"), args, None));
    let listed = cli(&["schemas", "list"]);
    assert!(listed.contains("audit-log-value"), "{listed}");
    assert!(!listed.contains("pg.public.audit-value"), "{listed}");
    assert!(listed.contains("pg.public.users-value"), "{listed}");
    let shown = cli(&["schemas", "show", "audit-log-value"]);
    assert!(
        shown.contains("__deleted") && !shown.contains("Envelope"),
        "{shown}"
    );
    src.drop_db().await;
    dst.drop_db().await;
}
