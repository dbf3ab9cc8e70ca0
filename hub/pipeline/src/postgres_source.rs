//! A `sources[i]` of kind `postgres` to a running PostgreSQL source: the
//! tables its patterns select, the publication kept in step with them,
//! the stream's configuration, and the checks `validate` runs against
//! the server.

use std::time::Duration;

use tokio_postgres::Client;
use tributary_connector_postgres::source::{
    PublicationScope, SourceError, StreamConfig, sql_connect,
};

use crate::config::{LogSection, PostgresSection, SourceSection};
use crate::error::ServerCheckError;

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
        .filter(|(schema, table)| s.tables.selects(schema, table))
        .collect())
}

/// The streaming source's configuration for `s`, with `tables` resolved.
pub fn stream_config(
    s: &SourceSection,
    pg: &PostgresSection,
    log: &LogSection,
    tables: Vec<(String, String)>,
) -> StreamConfig {
    StreamConfig {
        name: s.name.clone(),
        connect: pg.connect.clone(),
        publication: pg.publication.clone(),
        slot: pg.slot.clone(),
        tables,
        publication_scope: PublicationScope::Tables,
        engine: s.engine_settings(log, Duration::from_millis(500)),
        proto_version: pg.protocol,
        topic_template: s.topic.clone(),
        snapshot_workers: pg.snapshot_workers,
        max_retained_wal: pg.max_retained_wal,
        snapshot_chunk_rows: s.snapshot_chunk_rows,
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

/// What `validate` checks against the server: it answers, wal_level is
/// logical, the user may replicate, the patterns select tables and every
/// one has a key. Returns the tables.
pub async fn check_server(
    s: &SourceSection,
    pg: &PostgresSection,
) -> Result<Vec<(String, String)>, ServerCheckError> {
    let connect = &pg.connect;
    let client = sql_connect(connect).await.map_err(SourceError::from)?;
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
        return Err(ServerCheckError::NoReplication {
            user: connect.user.clone(),
        });
    }
    let tables = resolve_tables(&client, s).await?;
    if tables.is_empty() {
        return Err(ServerCheckError::NoTables {
            where_: format!("of database {} ", connect.database),
            patterns: s.tables.included(),
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
