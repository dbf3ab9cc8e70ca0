//! From a pipeline's `sources[i]` of kind `mysql` to a running
//! MySQL/MariaDB source: the connection URL, the table filter, and the
//! checks `validate` runs against the server.

use std::sync::Arc;
use std::time::Duration;

use tributary_connector_mysql::source::{
    Backoff, MysqlConfig, check_server as server_checks, check_url, connect, list_tables,
    show_create,
};

use crate::config::{LogSection, SourceSection, matches};
use crate::error::{SectionError, ServerCheckError};

/// The connection URL of `s`: `url`, or one made of its fields.
pub fn connect_url(s: &SourceSection) -> Result<String, SectionError> {
    if let Some(u) = &s.url {
        check_url(u.value.expose())?;
        let mut url = url::Url::parse(u.value.expose())?;
        if let Some(p) = s.password.as_ref().filter(|p| !p.expose().is_empty()) {
            url.set_password(Some(p.expose()))
                .map_err(|()| SectionError::Password)?;
        }
        return Ok(url.to_string());
    }
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let user = s.user.clone().unwrap_or_else(|| "root".into());
    let auth = match s.password.as_ref().filter(|p| !p.expose().is_empty()) {
        Some(p) => format!("{}:{}", enc(&user), enc(p.expose())),
        None => enc(&user),
    };
    Ok(format!(
        "mysql://{auth}@{}:{}/{}",
        s.host.as_deref().unwrap_or("127.0.0.1"),
        s.port.unwrap_or(3306),
        s.database.as_deref().unwrap_or("")
    ))
}

/// Whether `db.table` is selected by `s`'s patterns.
pub fn filter(s: &SourceSection) -> tributary_connector_mysql::source::TableFilter {
    let include: Vec<String> = s.tables.include.iter().map(|p| p.value.clone()).collect();
    let exclude: Vec<String> = s.tables.exclude.iter().map(|p| p.value.clone()).collect();
    Arc::new(move |db: &str, table: &str| {
        let name = format!("{db}.{table}");
        include.iter().any(|p| matches(p, &name)) && !exclude.iter().any(|p| matches(p, &name))
    })
}

/// Our replica server id: configured, or a stable one from the source's
/// name (replicas of one server need distinct ids; these stay clear of
/// the small numbers servers are usually given).
pub fn server_id(s: &SourceSection) -> u32 {
    s.server_id.unwrap_or_else(|| {
        let h = s.name.value.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        1_000_000 + h % 1_000_000_000
    })
}

/// The source's configuration for `s`.
pub fn mysql_config(s: &SourceSection, log: &LogSection) -> Result<MysqlConfig, SectionError> {
    Ok(MysqlConfig {
        name: s.name.value.clone(),
        url: connect_url(s)?,
        server_id: server_id(s),
        captured: filter(s),
        topic_template: s.topic.value.clone(),
        engine: tributary_capture::Settings {
            topic_config: crate::source::topic_config(log),
            snapshot: s.snapshot.mode(),
            reconnect: Backoff::default(),
            status_interval: Duration::from_millis(200),
        },
        snapshot_chunk_rows: s.snapshot_chunk_rows.clamp(1, 100_000),
        heartbeat: Duration::from_millis(s.heartbeat_ms.max(1000)),
        progress_interval: Duration::from_secs(10),
    })
}

/// What `validate` checks against the server: it answers, the binlog is
/// on in ROW format with full images, the user may read it, and the
/// patterns select tables that each have a primary key. Returns them.
pub async fn check_server(s: &SourceSection) -> Result<Vec<(String, String)>, ServerCheckError> {
    let url = connect_url(s)?;
    let mut conn = connect(&url).await?;
    let flavor = server_checks(&mut conn).await?;
    use mysql_async::prelude::Queryable;
    if let Err(e) = conn.query_drop("SHOW MASTER STATUS").await {
        return Err(ServerCheckError::NoBinlogAccess(e));
    }
    let tables = list_tables(&mut conn, &*filter(s)).await?;
    if tables.is_empty() {
        let pats: Vec<&str> = s.tables.include.iter().map(|p| p.value.as_str()).collect();
        return Err(ServerCheckError::NoTables {
            where_: String::new(),
            patterns: pats.join(", "),
        });
    }
    for (db, t) in &tables {
        let def = show_create(&mut conn, db, t).await?;
        tributary_connector_mysql::types::table_schema(db, &def, flavor)
            .map_err(tributary_connector_mysql::source::SourceError::from)?;
    }
    Ok(tables)
}
