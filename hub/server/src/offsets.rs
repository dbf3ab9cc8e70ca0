//! `tributary offsets list` and `tributary offsets reset`: consumer
//! groups' committed offsets in a data directory.
//!
//! A reset sets the group's offsets and leaves a pending reset beside
//! them (see `tributary_log::offsets`): a sink that stores its offsets in
//! its target (PostgreSQL, MySQL, Redis, tantivy) resumes from those, so
//! at its next start the sink runtime stores the reset there first, then
//! clears it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use tributary_api::v1;
use tributary_core::{OffsetStore as _, TopicPartition};
use tributary_log::SledOffsetStore;

use crate::client::Access;
use crate::datadir::DataDir;

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// One line per group and partition: the committed offset, the
    /// partition's end and the lag, and a reset not yet taken over by
    /// the group's sink.
    List {
        /// Only this consumer group (a sink's group is its name).
        #[arg(long)]
        group: Option<String>,
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
        #[command(flatten)]
        hub: crate::client::HubArgs,
    },
    /// Moves a group's offsets on a topic; prints what changed per
    /// partition. Stop the pipeline first: its sinks take the reset over
    /// at their next start, also those that store offsets in their target.
    Reset {
        /// The consumer group (a sink's group is its name).
        #[arg(long)]
        group: String,
        /// The topic, or a pattern (`shop.public.*`: every topic it
        /// matches).
        #[arg(long)]
        topic: String,
        /// Only this partition.
        #[arg(long)]
        partition: Option<u32>,
        /// `earliest`, `latest`, an offset, or an RFC 3339 timestamp
        /// (`2024-02-29T12:00:00Z`: per partition the first record at or
        /// after it, the end where none is).
        #[arg(long)]
        to: String,
        /// The data directory (a pipeline's log.dir).
        #[arg(long, default_value_os_t = crate::default_data_dir())]
        data_dir: PathBuf,
    },
}

/// Where `--to` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Earliest,
    Latest,
    Offset(u64),
    /// Milliseconds since the epoch (rounded up: the first record at or
    /// after the instant).
    Time(i64),
}

fn parse_to(s: &str) -> anyhow::Result<To> {
    Ok(match s {
        "earliest" => To::Earliest,
        "latest" => To::Latest,
        s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            To::Offset(s.parse().with_context(|| format!("offset {s}"))?)
        }
        s => match crate::records::parse_timestamp(s, true) {
            Some(micros) if micros != i64::MAX && micros != i64::MIN => {
                To::Time(micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0))
            }
            _ => bail!(
                "--to {s:?}: expected earliest, latest, an offset, or an RFC 3339 timestamp \
                 such as 2024-02-29T12:00:00Z"
            ),
        },
    })
}

/// The committed offsets (of `group`, or all), sorted by group, topic
/// and partition, with each partition's end and any pending reset: what
/// `offsets list` prints and the hub's ListOffsets answers.
pub fn committed(
    store: &SledOffsetStore,
    log: &tributary_log::Log,
    group: Option<&str>,
) -> anyhow::Result<Vec<v1::CommittedOffset>> {
    let pending = store.pending_resets(group)?;
    let mut out = Vec::new();
    for c in store.list(group)? {
        let end = log
            .topic(&c.tp.topic)
            .and_then(|t| t.partition(c.tp.partition).map(|p| p.high_watermark()))
            .ok();
        let reset_pending = pending
            .iter()
            .find(|r| r.group == c.group && r.tp == c.tp)
            .map(|r| r.offset);
        out.push(v1::CommittedOffset {
            group: c.group,
            topic: c.tp.topic,
            partition: c.tp.partition,
            offset: c.offset,
            end,
            reset_pending,
        });
    }
    Ok(out)
}

pub fn run(cmd: OffsetsCommand) -> anyhow::Result<()> {
    match cmd {
        OffsetsCommand::List {
            group,
            data_dir,
            hub,
        } => {
            let listed = match hub.access(&data_dir)? {
                Access::Local(dd) => {
                    let registry = dd.registry()?;
                    let log = dd.log(&registry)?;
                    match dd.offsets_if_any()? {
                        Some(store) => committed(&store, &log, group.as_deref())?,
                        None => Vec::new(),
                    }
                }
                Access::Remote(hub, rt) => {
                    rt.block_on(
                        hub.client
                            .clone()
                            .list_offsets(v1::ListOffsetsRequest { group }),
                    )
                    .map_err(|s| crate::client::failed(&hub, s))?
                    .into_inner()
                    .offsets
                }
            };
            for c in listed {
                let tp = TopicPartition::new(c.topic, c.partition);
                let mut line = format!("{}\t{tp}\toffset={}", c.group, c.offset);
                match c.end {
                    Some(end) => line.push_str(&format!(
                        "\tend={end}\tlag={}",
                        end.saturating_sub(c.offset)
                    )),
                    None => line.push_str("\tend=-\tlag=-"),
                }
                if let Some(r) = c.reset_pending {
                    line.push_str(&format!("\treset_pending={r}"));
                }
                crate::records::stdout_line(format_args!("{line}"));
            }
        }
        OffsetsCommand::Reset {
            group,
            topic,
            partition,
            to,
            data_dir,
        } => {
            let to = parse_to(&to)?;
            let dd = DataDir::existing(&data_dir)?;
            let registry = dd.registry()?;
            let log = dd.log(&registry)?;
            let topics = if topic.contains('*') {
                let all: Vec<_> = log
                    .topics()
                    .into_iter()
                    .filter(|t| tributary_core::pattern::matches(&topic, t.name()))
                    .collect();
                if all.is_empty() {
                    bail!("no topic matches {topic:?}");
                }
                all
            } else {
                vec![log.topic(&topic)?]
            };
            let mut parts = Vec::new();
            for t in &topics {
                match partition {
                    Some(p) => parts.push((t, p, Arc::clone(t.partition(p)?))),
                    None => parts.extend(t.partitions().iter().map(|p| (t, p.id(), Arc::clone(p)))),
                }
            }
            let store = dd.offsets()?;
            let mut changes = Vec::new();
            for (t, id, p) in parts {
                let tp = TopicPartition::new(t.name(), id);
                let (earliest, end) = (p.earliest_offset(), p.high_watermark());
                let next = match to {
                    To::Earliest => earliest,
                    To::Latest => end,
                    To::Offset(o) if o < earliest || o > end => bail!(
                        "offset {o} is not in {tp}: it holds offsets {earliest} to {} (the end is {end})",
                        end.saturating_sub(1)
                    ),
                    To::Offset(o) => o,
                    To::Time(ms) => p.offset_for_timestamp(ms)?.unwrap_or(end),
                };
                let before = store.get(&group, &tp)?;
                changes.push((tp, before, next));
            }
            let offsets: Vec<(TopicPartition, u64)> = changes
                .iter()
                .map(|(tp, _, next)| (tp.clone(), *next))
                .collect();
            store.reset(&group, &offsets)?;
            for (tp, before, next) in &changes {
                let before = before.map_or_else(|| "-".to_string(), |o| o.to_string());
                crate::records::stdout_line(format_args!("{group}\t{tp}\t{before} -> {next}"));
            }
            eprintln!(
                "group {group} reset on {} partitions ({topic}); its sink takes it over at its next start",
                changes.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets() {
        assert_eq!(parse_to("earliest").ok(), Some(To::Earliest));
        assert_eq!(parse_to("latest").ok(), Some(To::Latest));
        assert_eq!(parse_to("42").ok(), Some(To::Offset(42)));
        assert_eq!(parse_to("1970-01-01T00:00:01Z").ok(), Some(To::Time(1000)));
        // 1.0005 s: the first millisecond at or after it is 1001.
        assert_eq!(
            parse_to("1970-01-01T00:00:01.0005Z").ok(),
            Some(To::Time(1001))
        );
        assert!(parse_to("yesterday").is_err());
        assert!(parse_to("2024-02-29T12:00:00").is_err());
    }
}
