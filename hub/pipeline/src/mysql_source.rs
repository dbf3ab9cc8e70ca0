//! A `sources[i]` of kind `mysql` to a running MySQL/MariaDB source: the
//! table filter, the source's configuration, and the checks `validate`
//! runs against the server.

use std::sync::Arc;
use std::time::Duration;

use tributary_connector_mysql::source::{
    MysqlConfig, check_server as server_checks, connect, list_tables, show_create,
};

use crate::config::{LogSection, MysqlSection, SourceSection};
use crate::error::ServerCheckError;

/// Whether `db.table` is selected by `s`'s patterns.
pub fn filter(s: &SourceSection) -> tributary_connector_mysql::source::TableFilter {
    let tables = s.tables.clone();
    Arc::new(move |db: &str, table: &str| tables.selects(db, table))
}

/// The source's configuration for `s`.
pub fn mysql_config(s: &SourceSection, my: &MysqlSection, log: &LogSection) -> MysqlConfig {
    MysqlConfig {
        name: s.name.clone(),
        url: my.url.expose().to_string(),
        server_id: my.server_id,
        captured: filter(s),
        topic_template: s.topic.clone(),
        engine: s.engine_settings(log, Duration::from_millis(200)),
        snapshot_chunk_rows: s.snapshot_chunk_rows.clamp(1, 100_000),
    }
}

/// What `validate` checks against the server: it answers, the binlog is
/// on in ROW format with full images, the user may read it, and the
/// patterns select tables that each have a primary key. Returns them.
pub async fn check_server(
    s: &SourceSection,
    my: &MysqlSection,
) -> Result<Vec<(String, String)>, ServerCheckError> {
    let mut conn = connect(my.url.expose()).await?;
    let flavor = server_checks(&mut conn).await?;
    use mysql_async::prelude::Queryable;
    if let Err(e) = conn.query_drop("SHOW MASTER STATUS").await {
        return Err(ServerCheckError::NoBinlogAccess(e));
    }
    let tables = list_tables(&mut conn, &*filter(s)).await?;
    if tables.is_empty() {
        return Err(ServerCheckError::NoTables {
            where_: String::new(),
            patterns: s.tables.included(),
        });
    }
    for (db, t) in &tables {
        let def = show_create(&mut conn, db, t).await?;
        tributary_connector_mysql::types::table_schema(db, &def, flavor)
            .map_err(tributary_connector_mysql::source::SourceError::from)?;
    }
    Ok(tables)
}
