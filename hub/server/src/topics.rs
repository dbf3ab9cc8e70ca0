//! `tributary topics`: what a data directory holds (through the hub
//! when one runs there: see [`crate::client`]).

use std::path::PathBuf;

use clap::Subcommand;
use tributary_api::v1;

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
        config: Some(crate::grpc::config_message(t.config())),
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
    let config = crate::grpc::config_of(d.config.as_ref())?;
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
