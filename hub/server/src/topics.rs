//! `tributary topics`: what a data directory holds (through the hub
//! when one runs there: see [`crate::client`]).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use tributary_api::v1;
use tributary_log::{Cleanup, Compression, FsyncPolicy, TopicConfig};

use crate::client::{Access, HubArgs, failed};
use crate::datadir::DataDir;

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// One line per topic: name, partitions, records, bytes.
    List {
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Configuration and per-partition offsets of one topic, as JSON.
    Describe {
        /// Topic name.
        topic: String,
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
        #[command(flatten)]
        hub: HubArgs,
    },
}

/// Every topic's totals, from the log.
pub fn summaries(log: &tributary_log::Log) -> Vec<v1::TopicSummary> {
    log.topics()
        .iter()
        .map(|t| {
            let (mut records, mut bytes) = (0u64, 0u64);
            for p in t.partitions() {
                records += p.high_watermark() - p.earliest_offset();
                bytes += p.disk_usage().1;
            }
            v1::TopicSummary {
                name: t.name().to_string(),
                partitions: t.partitions().len() as u32,
                records,
                bytes,
            }
        })
        .collect()
}

/// A topic's configuration and partitions.
pub fn description(t: &tributary_log::Topic) -> v1::TopicDescription {
    v1::TopicDescription {
        name: t.name().to_string(),
        config: Some(config_message(t.config())),
        partitions: t
            .partitions()
            .iter()
            .map(|p| {
                let (segments, bytes) = p.disk_usage();
                v1::PartitionInfo {
                    partition: p.id(),
                    earliest_offset: p.earliest_offset(),
                    high_watermark: p.high_watermark(),
                    durable_watermark: p.durable_watermark(),
                    segments: segments as u32,
                    bytes,
                }
            })
            .collect(),
    }
}

fn print_list(topics: &[v1::TopicSummary]) {
    for t in topics {
        crate::records::stdout_line(format_args!(
            "{}\tpartitions={}\toffsets={}\tbytes={}",
            t.name, t.partitions, t.records, t.bytes
        ));
    }
}

fn print_description(d: &v1::TopicDescription) -> anyhow::Result<()> {
    let config = config_of(d.config.as_ref())?;
    let partitions: Vec<_> = d
        .partitions
        .iter()
        .map(|p| {
            serde_json::json!({
                "partition": p.partition,
                "earliest_offset": p.earliest_offset,
                "high_watermark": p.high_watermark,
                "durable_watermark": p.durable_watermark,
                "segments": p.segments,
                "bytes": p.bytes,
            })
        })
        .collect();
    let out = serde_json::json!({
        "topic": d.name,
        "config": config,
        "partitions": partitions,
    });
    crate::records::stdout_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
    Ok(())
}

pub fn run(cmd: TopicsCommand) -> anyhow::Result<()> {
    match cmd {
        TopicsCommand::List { data_dir, hub } => match hub.access(&data_dir)? {
            Access::Local(dd) => {
                let registry = dd.registry()?;
                print_list(&summaries(&dd.log(&registry)?));
            }
            Access::Remote(hub, rt) => {
                let got = rt
                    .block_on(hub.client.clone().list_topics(v1::ListTopicsRequest {}))
                    .map_err(|s| failed(&hub, s))?;
                print_list(&got.into_inner().topics);
            }
        },
        TopicsCommand::Describe {
            topic,
            data_dir,
            hub,
        } => match hub.access(&data_dir)? {
            Access::Local(dd) => {
                let d = local_description(&dd, &topic)?;
                print_description(&d)?;
            }
            Access::Remote(hub, rt) => {
                let got = rt
                    .block_on(
                        hub.client
                            .clone()
                            .describe_topic(v1::DescribeTopicRequest { topic }),
                    )
                    .map_err(|s| failed(&hub, s))?;
                print_description(&got.into_inner())?;
            }
        },
    }
    Ok(())
}

fn local_description(dd: &DataDir, topic: &str) -> anyhow::Result<v1::TopicDescription> {
    let registry = dd.registry()?;
    let log = dd.log(&registry)?;
    let t = log.topic(topic)?;
    Ok(description(&t))
}

/// A topic's configuration as the API sends it.
pub fn config_message(c: &TopicConfig) -> v1::TopicConfig {
    let (fsync, fsync_interval_ms) = match c.fsync {
        FsyncPolicy::Always => ("always", None),
        FsyncPolicy::Interval { interval_ms } => ("interval", Some(interval_ms)),
        FsyncPolicy::Never => ("never", None),
    };
    v1::TopicConfig {
        partitions: c.partitions,
        fsync: fsync.into(),
        fsync_interval_ms,
        compression: match c.compression {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
        .into(),
        segment_bytes: c.segment_bytes,
        segment_ms: c.segment_ms,
        retention_bytes: c.retention_bytes,
        retention_ms: c.retention_ms,
        cleanup: match c.cleanup {
            Cleanup::Delete => "delete",
            Cleanup::Compact => "compact",
        }
        .into(),
        delete_retention_ms: c.delete_retention_ms,
        index_interval_bytes: c.index_interval_bytes,
    }
}

/// [`config_message`] back.
pub fn config_of(m: Option<&v1::TopicConfig>) -> anyhow::Result<TopicConfig> {
    let m = m.context("the hub sent a topic without its configuration")?;
    let fsync = match (m.fsync.as_str(), m.fsync_interval_ms) {
        ("always", _) => FsyncPolicy::Always,
        ("never", _) => FsyncPolicy::Never,
        ("interval", Some(ms)) => FsyncPolicy::interval(ms),
        (other, _) => anyhow::bail!("the hub sent an unknown fsync policy {other:?}"),
    };
    let compression = match m.compression.as_str() {
        "none" => Compression::None,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => anyhow::bail!("the hub sent an unknown compression {other:?}"),
    };
    let cleanup = match m.cleanup.as_str() {
        "delete" => Cleanup::Delete,
        "compact" => Cleanup::Compact,
        other => anyhow::bail!("the hub sent an unknown cleanup policy {other:?}"),
    };
    Ok(TopicConfig {
        partitions: m.partitions,
        fsync,
        compression,
        segment_bytes: m.segment_bytes,
        segment_ms: m.segment_ms,
        retention_bytes: m.retention_bytes,
        retention_ms: m.retention_ms,
        cleanup,
        delete_retention_ms: m.delete_retention_ms,
        index_interval_bytes: m.index_interval_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_config_survives_the_wire() {
        let configs = [
            TopicConfig::default(),
            TopicConfig {
                partitions: 3,
                fsync: FsyncPolicy::Always,
                compression: Compression::Zstd,
                segment_ms: None,
                retention_bytes: Some(1 << 20),
                retention_ms: Some(60_000),
                cleanup: Cleanup::Compact,
                ..TopicConfig::default()
            },
            TopicConfig {
                fsync: FsyncPolicy::Never,
                compression: Compression::Lz4,
                ..TopicConfig::default()
            },
        ];
        for c in configs {
            let back = config_of(Some(&config_message(&c))).expect("known names");
            assert_eq!(back, c);
        }
        assert!(config_of(None).is_err());
        let mut bad = config_message(&TopicConfig::default());
        bad.compression = "brotli".into();
        assert!(config_of(Some(&bad)).is_err());
    }
}
