//! From a pipeline's `sources[i]` to a running PostgreSQL source: the
//! connection (URL or fields), the tables its patterns select, and the
//! checks `validate` runs against the server.

use std::time::Duration;

use tokio_postgres::Client;
use tributary_connector_postgres::replication::ConnectConfig;
use tributary_connector_postgres::source::{
    Backoff, PublicationScope, SnapshotMode, SourceError, StreamConfig, sql_connect,
};
use tributary_connector_postgres::tls::SslMode;
use tributary_log::TopicConfig;

use crate::config::{LogSection, SnapshotName, SourceSection, matches};

/// Parses `postgres://user:password@host:port/database?sslmode=..&sslrootcert=..`.
/// Errors never repeat the URL (it may hold a password).
pub fn parse_url(url: &str) -> Result<ConnectConfig, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "scheme {:?}: expected postgres:// or postgresql://",
            u.scheme()
        ));
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let database = u.path().trim_start_matches('/');
    if database.is_empty() {
        return Err("no database in the URL path (postgres://host/DATABASE)".into());
    }
    let mut cfg = ConnectConfig {
        host: u.host_str().unwrap_or("localhost").to_string(),
        port: u.port().unwrap_or(5432),
        user: if u.username().is_empty() {
            "postgres".into()
        } else {
            decode(u.username())
        },
        password: u.password().map(decode),
        database: decode(database),
        application_name: "tributary".into(),
        extra_options: String::new(),
        ssl_mode: SslMode::Prefer,
        ssl_root_cert: None,
    };
    for (k, v) in u.query_pairs() {
        match &*k {
            "sslmode" => {
                cfg.ssl_mode = SslMode::parse(&v).ok_or_else(|| {
                    format!("sslmode {v:?}: expected disable, prefer, require or verify-full")
                })?;
            }
            "sslrootcert" => cfg.ssl_root_cert = Some(v.into_owned().into()),
            "application_name" => cfg.application_name = v.into_owned(),
            other => return Err(format!("unknown URL parameter {other:?}")),
        }
    }
    Ok(cfg)
}

/// The connection settings of `s` (URL first, then fields over it).
pub fn connect_config(s: &SourceSection) -> Result<ConnectConfig, String> {
    let mut cfg = match &s.url {
        Some(u) => parse_url(u.value.expose())?,
        None => ConnectConfig {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: String::new(),
            application_name: "tributary".into(),
            extra_options: String::new(),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
        },
    };
    if let Some(h) = &s.host {
        cfg.host = h.clone();
    }
    if let Some(p) = s.port {
        cfg.port = p;
    }
    if let Some(u) = &s.user {
        cfg.user = u.clone();
    }
    if let Some(p) = &s.password {
        cfg.password = Some(p.expose().to_string());
    }
    if let Some(d) = &s.database {
        cfg.database = d.clone();
    }
    if let Some(m) = &s.sslmode {
        cfg.ssl_mode = SslMode::parse(&m.value).ok_or("bad sslmode")?;
    }
    if let Some(c) = &s.sslrootcert {
        cfg.ssl_root_cert = Some(c.clone());
    }
    cfg.application_name = format!("tributary-{}", s.name.value);
    Ok(cfg)
}

/// The tables of the database that `s`'s patterns select, sorted.
pub async fn resolve_tables(
    client: &Client,
    s: &SourceSection,
) -> Result<Vec<(String, String)>, SourceError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|source| SourceError::Sql {
            what: "listing tables".into(),
            source,
        })?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(schema, table)| {
            let name = format!("{schema}.{table}");
            s.tables.include.iter().any(|p| matches(&p.value, &name))
                && !s.tables.exclude.iter().any(|p| matches(&p.value, &name))
        })
        .collect())
}

/// The streaming source's configuration for `s`, with `tables` resolved.
pub fn stream_config(
    s: &SourceSection,
    log: &LogSection,
    connect: ConnectConfig,
    tables: Vec<(String, String)>,
) -> StreamConfig {
    let name = &s.name.value;
    StreamConfig {
        name: name.clone(),
        connect,
        publication: s
            .publication
            .clone()
            .unwrap_or_else(|| format!("tributary_{}", name.replace('-', "_"))),
        slot: s
            .slot
            .clone()
            .unwrap_or_else(|| format!("tributary_{}", name.replace('-', "_"))),
        tables,
        publication_scope: PublicationScope::Tables,
        status_interval: Duration::from_millis(500),
        topic_config: topic_config(log),
        snapshot: match s.snapshot {
            SnapshotName::Initial => SnapshotMode::Initial,
            SnapshotName::Never => SnapshotMode::Never,
            SnapshotName::InitialOnly => SnapshotMode::InitialOnly,
            SnapshotName::WhenNeeded => SnapshotMode::WhenNeeded,
        },
        heartbeat: (s.heartbeat_ms > 0).then(|| Duration::from_millis(s.heartbeat_ms)),
        proto_version: s.protocol.value,
        reconnect: Backoff::default(),
        topic_template: s.topic.value.clone(),
        snapshot_workers: s.snapshot_workers,
        snapshot_chunk_rows: s.snapshot_chunk_rows,
        progress_interval: Duration::from_secs(10),
    }
}

/// Adds to an existing publication the tables the patterns now select
/// (a table created since the last start): the pipeline owns it. The
/// source then snapshots them as tables added to its configuration.
pub async fn sync_publication(client: &Client, cfg: &StreamConfig) -> Result<(), SourceError> {
    use tributary_connector_postgres::replication::quote_ident;
    use tributary_connector_postgres::source::{is_published, publication_exists};
    if !publication_exists(client, &cfg.publication).await? {
        return Ok(());
    }
    for (schema, table) in &cfg.tables {
        let published = is_published(client, &cfg.publication, schema, table).await?;
        if !published {
            let ddl = format!(
                "ALTER PUBLICATION {} ADD TABLE {}.{}",
                quote_ident(&cfg.publication),
                quote_ident(schema),
                quote_ident(table)
            );
            client
                .batch_execute(&ddl)
                .await
                .map_err(|source| SourceError::Sql {
                    what: ddl.clone(),
                    source,
                })?;
            tracing::info!(publication = %cfg.publication, table = %format!("{schema}.{table}"), "table added to the publication");
        }
    }
    Ok(())
}

/// Topic settings from `log:`.
pub fn topic_config(log: &LogSection) -> TopicConfig {
    let mut t = TopicConfig {
        partitions: log.partitions,
        fsync: if log.fsync_interval_ms == 0 {
            tributary_log::FsyncPolicy::Always
        } else {
            tributary_log::FsyncPolicy::interval(log.fsync_interval_ms)
        },
        ..TopicConfig::default()
    };
    t.retention_ms = log.retention_ms;
    t.retention_bytes = log.retention_bytes;
    if log.compaction {
        t.cleanup = tributary_log::Cleanup::Compact;
    }
    t
}

/// What `validate` checks against the server: it answers, wal_level is
/// logical, the user may replicate, the patterns select tables and every
/// one has a key. Returns the tables.
pub async fn check_server(s: &SourceSection) -> Result<Vec<(String, String)>, String> {
    let connect = connect_config(s)?;
    let client = sql_connect(&connect).await.map_err(|e| e.to_string())?;
    let wal: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if wal != "logical" {
        return Err(SourceError::WalLevel(wal).to_string());
    }
    let may: bool = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !may {
        return Err(format!(
            "user {} may not replicate. Fix: ALTER ROLE {} REPLICATION;",
            connect.user, connect.user
        ));
    }
    let tables = resolve_tables(&client, s)
        .await
        .map_err(|e| e.to_string())?;
    if tables.is_empty() {
        let pats: Vec<&str> = s.tables.include.iter().map(|p| p.value.as_str()).collect();
        return Err(format!(
            "no table of database {} matches {}",
            connect.database,
            pats.join(", ")
        ));
    }
    for (schema, table) in &tables {
        tributary_connector_postgres::catalog::table_schema(
            &client,
            &connect.database,
            schema,
            table,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = parse_url(
            "postgres://me:p%40ss@db.example:6543/shop?sslmode=verify-full&sslrootcert=/ca.pem",
        )
        .expect("url");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.database.as_str()
            ),
            ("db.example", 6543, "me", "shop")
        );
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        let err = parse_url("postgres://me:secret@h/db?sslmode=maybe").expect_err("sslmode");
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_url("mysql://h/db").is_err());
        assert!(parse_url("postgres://h/").is_err());
    }
}
