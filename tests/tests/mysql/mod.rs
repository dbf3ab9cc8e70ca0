//! The MySQL/MariaDB source against the real local MariaDB. Each test
//! works in a database of its own, created and dropped here.

mod bigtx;
mod ddl;
mod lost;
mod resume;
mod snapshot;
mod stream;
mod types;
mod validate;

pub use tributary_tests::mysql::*;

use mysql_async::prelude::Queryable;

/// Rows of `SELECT * FROM table ORDER BY 1` as the snapshot reads them.
pub async fn table_rows(
    db: &mut MyDb,
    table: &str,
) -> std::collections::BTreeMap<String, NamedRow> {
    let def = tributary_connector_mysql::source::show_create(&mut db.conn, &db.name, table)
        .await
        .expect("show create");
    let shape = tributary_connector_mysql::types::table_schema(
        &db.name,
        &def,
        tributary_connector_mysql::types::Flavor::MariaDb,
    )
    .expect("shape");
    let rows: Vec<mysql_async::Row> = db
        .conn
        .exec(format!("SELECT * FROM `{table}`"), ())
        .await
        .expect("select");
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        let row: Vec<tributary_core::Datum> = r
            .unwrap()
            .into_iter()
            .zip(&shape.columns)
            .map(|(v, c)| {
                tributary_connector_mysql::value::datum(v, &c.ty, &c.name).expect("value")
            })
            .collect();
        out.insert(key_text(&row, &shape), named(&row, &shape));
    }
    out
}
