//! `tributary topics`: what a data directory holds.

use std::path::PathBuf;

use clap::Subcommand;
use tributary_log::{Log, LogOptions};

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// One line per topic: name, partitions, records, bytes.
    List {
        /// The log's data directory.
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
    },
    /// Configuration and per-partition offsets of one topic, as JSON.
    Describe {
        /// Topic name.
        topic: String,
        /// The log's data directory.
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
    },
}

fn open(dir: &PathBuf) -> anyhow::Result<Log> {
    let opts = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    Ok(Log::open_with(dir, opts)?)
}

pub fn run(cmd: TopicsCommand) -> anyhow::Result<()> {
    match cmd {
        TopicsCommand::List { data_dir } => {
            let log = open(&data_dir)?;
            for t in log.topics() {
                let (mut records, mut bytes) = (0u64, 0u64);
                for p in t.partitions() {
                    records += p.high_watermark() - p.earliest_offset();
                    bytes += p.disk_usage().1;
                }
                println!(
                    "{}\tpartitions={}\toffsets={}\tbytes={}",
                    t.name(),
                    t.partitions().len(),
                    records,
                    bytes
                );
            }
        }
        TopicsCommand::Describe { topic, data_dir } => {
            let log = open(&data_dir)?;
            let t = log.topic(&topic)?;
            let partitions: Vec<_> = t
                .partitions()
                .iter()
                .map(|p| {
                    let (segments, bytes) = p.disk_usage();
                    serde_json::json!({
                        "partition": p.id(),
                        "earliest_offset": p.earliest_offset(),
                        "high_watermark": p.high_watermark(),
                        "durable_watermark": p.durable_watermark(),
                        "segments": segments,
                        "bytes": bytes,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "topic": t.name(),
                "config": t.config(),
                "partitions": partitions,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}
