//! `tributary status`: every connector of the running hub's pipeline,
//! asked over gRPC (PipelineStatus).

use std::fmt::Write as _;
use std::path::PathBuf;

use tributary_api::v1;

use crate::client::{HubArgs, failed};
use crate::datadir::DataDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, a header first.
    Table,
    /// One JSON object per connector per line, in the shape of the HTTP
    /// API's `GET /pipelines`.
    Json,
}

/// Per connector: name, role, state, position, lag (records and
/// seconds), rate, restarts and the last error. Needs a running hub.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Ask the hub that holds this data directory (at the address it
    /// published there) when --hub is not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    hub: HubArgs,
}

fn position_text(c: &v1::Connector) -> String {
    match &c.position {
        Some(v1::connector::Position::Lsn(l) | v1::connector::Position::Binlog(l)) => l.clone(),
        Some(v1::connector::Position::Offsets(o)) if !o.offsets.is_empty() => o
            .offsets
            .iter()
            .map(|p| format!("{}/{}={}", p.topic, p.partition, p.offset))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".to_string(),
    }
}

fn json(c: &v1::Connector) -> serde_json::Value {
    let position = match &c.position {
        Some(v1::connector::Position::Lsn(l) | v1::connector::Position::Binlog(l)) => {
            serde_json::Value::String(l.clone())
        }
        Some(v1::connector::Position::Offsets(o)) => {
            let mut by_topic = serde_json::Map::new();
            for p in &o.offsets {
                let entry = by_topic
                    .entry(p.topic.clone())
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(p.partition.to_string(), p.offset.into());
                }
            }
            serde_json::Value::Object(by_topic)
        }
        None => serde_json::Value::Null,
    };
    serde_json::json!({
        "name": c.name,
        "role": c.role,
        "kind": c.kind,
        "state": c.state,
        "phase": c.phase,
        "restarts": c.restarts,
        "last_error": c.last_error,
        "records": c.records,
        "records_per_second": c.records_per_second,
        "errors": c.errors,
        "position": position,
        "lag_records": c.lag_records,
        "lag_seconds": c.lag_seconds,
        "replication_lag_bytes": c.replication_lag_bytes,
        "slot": c.slot.as_ref().map(|h| serde_json::json!({
            "retained_wal_bytes": h.retained_wal_bytes,
            "wal_status": h.wal_status,
            "safe_wal_size": h.safe_wal_size,
        })),
        "quarantined": c.quarantined.iter().map(|q| serde_json::json!({
            "schema": q.schema,
            "table": q.table,
            "reason": q.reason,
            "position": q.position,
            "since_ms": q.since_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The table: one row per connector, columns padded to their widest
/// cell; the last error, free text, comes last.
fn table(connectors: &[v1::Connector]) -> String {
    let header = [
        "NAME",
        "ROLE",
        "STATE",
        "POSITION",
        "LAG_RECORDS",
        "LAG_SECONDS",
        "RATE",
        "RESTARTS",
        "LAST_ERROR",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for c in connectors {
        rows.push(vec![
            c.name.clone(),
            c.role.clone(),
            c.state.clone(),
            position_text(c),
            c.lag_records.map_or("-".into(), |n| n.to_string()),
            c.lag_seconds.map_or("-".into(), |s| format!("{s:.1}")),
            format!("{:.1}/s", c.records_per_second),
            c.restarts.to_string(),
            c.last_error
                .as_deref()
                .map_or("-".into(), |e| e.replace('\n', " ")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The hub to ask: `--hub`, or the one running on `--data-dir`.
fn hub_of(hub: &HubArgs, data_dir: Option<&std::path::Path>) -> anyhow::Result<HubArgs> {
    let mut hub_args = hub.clone();
    if hub_args.hub.is_none()
        && let Some(dir) = data_dir
    {
        hub_args.hub = DataDir::existing(dir)?.running_hub()?;
        if hub_args.hub.is_none() {
            anyhow::bail!(
                "no hub runs on {} (start `tributary run` or `tributary serve`, or give --hub)",
                dir.display()
            );
        }
    }
    Ok(hub_args)
}

/// Restart a failed source or a paused sink of the running hub's
/// pipeline: it starts again from its stored position or committed
/// offsets. Needs a running hub.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// The source or sink, by its name in the pipeline.
    name: String,
    /// Ask the hub that holds this data directory (at the address it
    /// published there) when --hub is not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn restart(args: RestartArgs) -> anyhow::Result<()> {
    let hub_args = hub_of(&args.hub, args.data_dir.as_deref())?;
    let rt = crate::runtime()?;
    let role = rt.block_on(async {
        let hub = hub_args.connect().await?;
        let got = hub
            .client
            .clone()
            .restart_connector(v1::RestartConnectorRequest {
                name: args.name.clone(),
            })
            .await
            .map_err(|s| failed(&hub, s))?;
        anyhow::Ok(got.into_inner().role)
    })?;
    crate::records::stdout_line(format_args!("{role} {}: restarting", args.name));
    Ok(())
}

/// A source's tables.
#[derive(Debug, clap::Subcommand)]
pub enum TablesCommand {
    /// Take a quarantined table back: the source restarts, reads it
    /// again at a new point (its old keys deleted first) and streams its
    /// changes with the others'. Needs a running hub.
    Resume(ResumeArgs),
}

/// `tables resume SOURCE TABLE`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The source, by its name in the pipeline.
    source: String,
    /// The table, as schema.table (PostgreSQL) or database.table (MySQL).
    table: String,
    /// Ask the hub that holds this data directory (at the address it
    /// published there) when --hub is not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn tables(cmd: TablesCommand) -> anyhow::Result<()> {
    let TablesCommand::Resume(args) = cmd;
    let hub_args = hub_of(&args.hub, args.data_dir.as_deref())?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        let hub = hub_args.connect().await?;
        hub.client
            .clone()
            .resume_table(v1::ResumeTableRequest {
                source: args.source.clone(),
                table: args.table.clone(),
            })
            .await
            .map_err(|s| failed(&hub, s))?;
        anyhow::Ok(())
    })?;
    crate::records::stdout_line(format_args!(
        "source {}: taking {} back (read again, then streamed)",
        args.source, args.table
    ));
    Ok(())
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let hub_args = hub_of(&args.hub, args.data_dir.as_deref())?;
    let rt = crate::runtime()?;
    let connectors = rt.block_on(async {
        let hub = hub_args.connect().await?;
        let got = hub
            .client
            .clone()
            .pipeline_status(v1::PipelineStatusRequest {})
            .await
            .map_err(|s| failed(&hub, s))?;
        anyhow::Ok(got.into_inner().connectors)
    })?;
    match args.format {
        Format::Table => {
            let text = table(&connectors);
            crate::records::stdout_line(format_args!("{}", text.trim_end()));
            for c in &connectors {
                if let Some(h) = &c.slot {
                    crate::records::stdout_line(format_args!(
                        "{} slot: {} bytes of WAL retained, wal_status {}{}",
                        c.name,
                        h.retained_wal_bytes,
                        h.wal_status,
                        h.safe_wal_size
                            .map_or(String::new(), |s| format!(", safe_wal_size {s}"))
                    ));
                }
                for q in &c.quarantined {
                    crate::records::stdout_line(format_args!(
                        "{} quarantined {}.{} at {}: {}",
                        c.name,
                        q.schema,
                        q.table,
                        q.position,
                        q.reason.replace('\n', " ")
                    ));
                }
            }
        }
        Format::Json => {
            for c in &connectors {
                crate::records::stdout_line(format_args!("{}", json(c)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_its_columns() {
        let source = v1::Connector {
            name: "pg".into(),
            role: "source".into(),
            kind: "postgres".into(),
            state: "running".into(),
            position: Some(v1::connector::Position::Lsn("0/16B3748".into())),
            records_per_second: 12.34,
            ..Default::default()
        };
        let sink = v1::Connector {
            name: "cache-sink".into(),
            role: "sink".into(),
            state: "restarting".into(),
            restarts: 3,
            last_error: Some("connection refused".into()),
            lag_records: Some(40),
            lag_seconds: Some(1.25),
            position: Some(v1::connector::Position::Offsets(v1::SinkOffsets {
                offsets: vec![v1::PartitionOffset {
                    topic: "t".into(),
                    partition: 1,
                    offset: 9,
                }],
            })),
            ..Default::default()
        };
        let text = table(&[source, sink]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME        ROLE    STATE       POSITION"));
        assert!(lines[1].starts_with("pg          source  running     0/16B3748"));
        assert!(lines[1].ends_with("12.3/s  0         -"), "{text}");
        assert!(lines[2].contains("t/1=9"), "{text}");
        assert!(lines[2].ends_with("3         connection refused"), "{text}");
    }
}
