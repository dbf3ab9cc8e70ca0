//! From a pipeline's `sources[i]` to a running PostgreSQL source: the
//! connection (URL or fields), the tables its patterns select, and the
//! checks `validate` runs against the server.

use std::time::Duration;

use tokio_postgres::Client;
use tributary_connector_postgres::replication::ConnectConfig;
use tributary_connector_postgres::source::{
    Backoff, PublicationScope, SourceError, StreamConfig, sql_connect,
};
use tributary_connector_postgres::tls::SslMode;
use tributary_log::TopicConfig;

use crate::config::{LogSection, SourceSection, matches};
use crate::error::{SectionError, ServerCheckError};

/// The connection settings of `s` (URL first, then fields over it).
pub fn connect_config(s: &SourceSection) -> Result<ConnectConfig, SectionError> {
    let mut cfg = match &s.url {
        Some(u) => ConnectConfig::from_url(u.value.expose())?,
        None => ConnectConfig::default(),
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
        cfg.ssl_mode =
            SslMode::parse(&m.value).ok_or_else(|| SectionError::SslMode(m.value.clone()))?;
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
        engine: tributary_capture::Settings {
            topic_config: topic_config(log),
            snapshot: s.snapshot.mode(),
            reconnect: Backoff::default(),
            status_interval: Duration::from_millis(500),
        },
        heartbeat: (s.heartbeat_ms > 0).then(|| Duration::from_millis(s.heartbeat_ms)),
        proto_version: s.protocol.value,
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
pub async fn check_server(s: &SourceSection) -> Result<Vec<(String, String)>, ServerCheckError> {
    let connect = connect_config(s)?;
    let client = sql_connect(&connect).await.map_err(SourceError::from)?;
    let wal: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    if wal != "logical" {
        return Err(SourceError::WalLevel(wal).into());
    }
    let may: bool = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    if !may {
        return Err(ServerCheckError::NoReplication { user: connect.user });
    }
    let tables = resolve_tables(&client, s).await?;
    if tables.is_empty() {
        let pats: Vec<&str> = s.tables.include.iter().map(|p| p.value.as_str()).collect();
        return Err(ServerCheckError::NoTables {
            where_: format!("of database {} ", connect.database),
            patterns: pats.join(", "),
        });
    }
    for (schema, table) in &tables {
        tributary_connector_postgres::catalog::table_schema(
            &client,
            &connect.database,
            schema,
            table,
        )
        .await
        .map_err(SourceError::from)?;
    }
    Ok(tables)
}
