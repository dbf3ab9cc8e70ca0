//! Every metric the hub exposes, defined once (name, help, type,
//! labels), and their rendering in Prometheus' text exposition format
//! (version 0.0.4) for `/metrics`. The values come from the code that
//! knows them: the log (bytes, segments, the fsync histogram of
//! [`tributary_log::metrics`]), the sources and sink workers through
//! [`Telemetry`].
//!
//! Labels carry connector names, kinds and topic names only, never a
//! connector's configuration.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use tributary_log::Log;

use crate::telemetry::{ConnectorView, Telemetry};

/// A metric's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts from 0 with the process).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels, in the order samples give their values.
    pub labels: &'static [&'static str],
}

/// Change events each source wrote to the log.
pub const SOURCE_RECORDS: Metric = Metric {
    name: "tributary_source_records_total",
    help: "Change events the source wrote to the log.",
    kind: Kind::Counter,
    labels: &["connector", "kind"],
};
/// Records each sink's target applied.
pub const SINK_RECORDS: Metric = Metric {
    name: "tributary_sink_records_total",
    help: "Records the sink's target applied.",
    kind: Kind::Counter,
    labels: &["connector", "kind"],
};
/// Records in the log a sink has not applied.
pub const SINK_LAG_RECORDS: Metric = Metric {
    name: "tributary_sink_lag_records",
    help: "Records between the sink's committed offsets and the log's high watermarks.",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// Age of the oldest record a sink has not applied.
pub const SINK_LAG_SECONDS: Metric = Metric {
    name: "tributary_sink_lag_seconds",
    help: "Age of the oldest record the sink has not applied (0 when it has applied everything).",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// How far a source's confirmed position is behind its server.
pub const SOURCE_LAG_BYTES: Metric = Metric {
    name: "tributary_source_replication_lag_bytes",
    help: "WAL bytes between the server's end of WAL and the position the source confirmed (PostgreSQL sources).",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// Failures and refused records per connector.
pub const CONNECTOR_ERRORS: Metric = Metric {
    name: "tributary_connector_errors_total",
    help: "Failures (each restarts or pauses the connector) and records the target refused.",
    kind: Kind::Counter,
    labels: &["connector", "role"],
};
/// Restarts per connector.
pub const CONNECTOR_RESTARTS: Metric = Metric {
    name: "tributary_connector_restarts_total",
    help: "Restarts of the connector after failures.",
    kind: Kind::Counter,
    labels: &["connector", "role"],
};
/// Whether a connector runs.
pub const CONNECTOR_UP: Metric = Metric {
    name: "tributary_connector_running",
    help: "1 while the connector runs (every worker of a sink), else 0.",
    kind: Kind::Gauge,
    labels: &["connector", "role"],
};
/// Whether a connector is stopped by a failure until restarted.
pub const CONNECTOR_STOPPED_BY_FAILURE: Metric = Metric {
    name: "tributary_connector_failed",
    help: "1 while the connector is stopped by a failure until restarted (a failed source, a paused sink), else 0; its reason is in /pipelines.",
    kind: Kind::Gauge,
    labels: &["connector", "role"],
};
/// WAL a PostgreSQL source's slot retains.
pub const SLOT_RETAINED_WAL: Metric = Metric {
    name: "tributary_source_slot_retained_wal_bytes",
    help: "WAL the PostgreSQL source's replication slot keeps on the server (pg_current_wal_lsn() - restart_lsn).",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// WAL that can still be written before the slot may be invalidated.
pub const SLOT_SAFE_WAL: Metric = Metric {
    name: "tributary_source_slot_safe_wal_size_bytes",
    help: "WAL that can still be written before PostgreSQL may invalidate the slot (max_slot_wal_keep_size); absent without a limit.",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// Tables a source set aside.
pub const SOURCE_QUARANTINED: Metric = Metric {
    name: "tributary_source_quarantined_tables",
    help: "Tables the source set aside (on_error: quarantine) until `tributary tables resume`.",
    kind: Kind::Gauge,
    labels: &["connector"],
};
/// Bytes of a topic's segments.
pub const LOG_BYTES: Metric = Metric {
    name: "tributary_log_bytes",
    help: "Bytes of the topic's segment files, all partitions.",
    kind: Kind::Gauge,
    labels: &["topic"],
};
/// Segments of a topic.
pub const LOG_SEGMENTS: Metric = Metric {
    name: "tributary_log_segments",
    help: "Segments of the topic, all partitions.",
    kind: Kind::Gauge,
    labels: &["topic"],
};
/// Records in a topic (high watermarks).
pub const LOG_END_OFFSET: Metric = Metric {
    name: "tributary_log_end_offset",
    help: "The topic's next offset (high watermark), summed over its partitions.",
    kind: Kind::Gauge,
    labels: &["topic"],
};
/// The log's fsync latency.
pub const LOG_FSYNC_SECONDS: Metric = Metric {
    name: "tributary_log_fsync_seconds",
    help: "Latency of the log's fsyncs (fdatasync of a partition's active segment).",
    kind: Kind::Histogram,
    labels: &[],
};

/// Every metric, in the order `/metrics` shows them.
pub const ALL: &[Metric] = &[
    SOURCE_RECORDS,
    SINK_RECORDS,
    SINK_LAG_RECORDS,
    SINK_LAG_SECONDS,
    SOURCE_LAG_BYTES,
    CONNECTOR_ERRORS,
    CONNECTOR_RESTARTS,
    CONNECTOR_UP,
    CONNECTOR_STOPPED_BY_FAILURE,
    SOURCE_QUARANTINED,
    SLOT_RETAINED_WAL,
    SLOT_SAFE_WAL,
    LOG_BYTES,
    LOG_SEGMENTS,
    LOG_END_OFFSET,
    LOG_FSYNC_SECONDS,
];

/// Text in the exposition format, built family by family.
#[derive(Debug, Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, m: &Metric) {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(self.out, "# TYPE {} {kind}", m.name);
    }

    /// One sample of `m` (with `suffix` for a histogram's series), its
    /// label values in `m.labels`' order, then `extra` labels.
    fn sample(
        &mut self,
        m: &Metric,
        suffix: &str,
        values: &[&str],
        extra: &[(&str, &str)],
        v: f64,
    ) {
        debug_assert_eq!(values.len(), m.labels.len(), "{}", m.name);
        self.out.push_str(m.name);
        self.out.push_str(suffix);
        let labels: Vec<(&str, &str)> = m
            .labels
            .iter()
            .copied()
            .zip(values.iter().copied())
            .chain(extra.iter().copied())
            .collect();
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(v));
    }
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

/// `/metrics`: the log's metrics, and with a pipeline its connectors'.
pub fn render(log: &Log, telemetry: Option<&Telemetry>) -> String {
    let mut e = Exposition::default();
    // Once per scrape: the sinks' lags read the log.
    let views = telemetry.map(|t| (t, t.connectors()));
    for m in ALL {
        e.family(m);
        match m.name {
            n if n == LOG_BYTES.name || n == LOG_SEGMENTS.name || n == LOG_END_OFFSET.name => {
                for t in log.topics() {
                    let (mut segments, mut bytes, mut end) = (0usize, 0u64, 0u64);
                    for p in t.partitions() {
                        let (s, b) = p.disk_usage();
                        segments += s;
                        bytes += b;
                        end += p.high_watermark();
                    }
                    let v = if n == LOG_BYTES.name {
                        bytes as f64
                    } else if n == LOG_SEGMENTS.name {
                        segments as f64
                    } else {
                        end as f64
                    };
                    e.sample(m, "", &[t.name()], &[], v);
                }
            }
            n if n == LOG_FSYNC_SECONDS.name => {
                let (counts, sum_us) = tributary_log::metrics::fsync_histogram();
                let mut cumulative = 0u64;
                for (i, c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = match tributary_log::metrics::FSYNC_BUCKETS_US.get(i) {
                        Some(us) => number(*us as f64 / 1e6),
                        None => "+Inf".to_string(),
                    };
                    e.sample(m, "_bucket", &[], &[("le", &le)], cumulative as f64);
                }
                e.sample(m, "_sum", &[], &[], sum_us as f64 / 1e6);
                e.sample(m, "_count", &[], &[], cumulative as f64);
            }
            _ => {
                if let Some((t, views)) = &views {
                    connectors(&mut e, m, t, views);
                }
            }
        }
    }
    e.out
}

/// The samples of connector metric `m`.
fn connectors(e: &mut Exposition, m: &Metric, t: &Telemetry, views: &[ConnectorView]) {
    let view = |name: &str, role: &str| views.iter().find(|v| v.name == name && v.role == role);
    match m.name {
        n if n == SOURCE_RECORDS.name => {
            for s in &t.sources {
                let v = s.written.load(Ordering::Relaxed);
                e.sample(m, "", &[&s.name, s.format.kind], &[], v as f64);
            }
        }
        n if n == SINK_RECORDS.name => {
            for s in &t.sinks {
                let v = s.applied.load(Ordering::Relaxed);
                e.sample(m, "", &[&s.name, s.kind], &[], v as f64);
            }
        }
        n if n == SINK_LAG_RECORDS.name || n == SINK_LAG_SECONDS.name => {
            for s in &t.sinks {
                let v = view(&s.name, "sink");
                let v = if n == SINK_LAG_RECORDS.name {
                    v.and_then(|v| v.lag_records).unwrap_or(0) as f64
                } else {
                    v.and_then(|v| v.lag_seconds).unwrap_or(0.0)
                };
                e.sample(m, "", &[&s.name], &[], v);
            }
        }
        n if n == SOURCE_LAG_BYTES.name => {
            for s in &t.sources {
                if let Some(lag) = s.lag_bytes() {
                    e.sample(m, "", &[&s.name], &[], lag as f64);
                }
            }
        }
        n if n == CONNECTOR_ERRORS.name => {
            for s in &t.sources {
                let v = s.errors.load(Ordering::Relaxed);
                e.sample(m, "", &[&s.name, "source"], &[], v as f64);
            }
            for s in &t.sinks {
                let v = s.errors.load(Ordering::Relaxed);
                e.sample(m, "", &[&s.name, "sink"], &[], v as f64);
            }
        }
        n if n == SLOT_RETAINED_WAL.name || n == SLOT_SAFE_WAL.name => {
            for v in views.iter().filter(|v| v.role == "source") {
                let Some(slot) = &v.slot else { continue };
                let x = if n == SLOT_RETAINED_WAL.name {
                    Some(slot.retained_wal_bytes as f64)
                } else {
                    slot.safe_wal_size.map(|b| b as f64)
                };
                if let Some(x) = x {
                    e.sample(m, "", &[&v.name], &[], x);
                }
            }
        }
        n if n == SOURCE_QUARANTINED.name => {
            for v in views.iter().filter(|v| v.role == "source") {
                e.sample(m, "", &[&v.name], &[], v.quarantined.len() as f64);
            }
        }
        n if n == CONNECTOR_RESTARTS.name
            || n == CONNECTOR_UP.name
            || n == CONNECTOR_STOPPED_BY_FAILURE.name =>
        {
            for v in views {
                let x = if n == CONNECTOR_RESTARTS.name {
                    f64::from(v.restarts)
                } else if n == CONNECTOR_UP.name {
                    f64::from(u8::from(v.state == "running"))
                } else {
                    f64::from(u8::from(v.state == "failed" || v.state == "paused"))
                };
                e.sample(m, "", &[&v.name, v.role], &[], x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_by_the_rules() {
        for m in ALL {
            assert!(m.name.starts_with("tributary_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            assert!(!m.help.contains('\n'), "{}", m.name);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.sample(&LOG_BYTES, "", &["a\"b\\c\nd"], &[], 1.5);
        assert_eq!(
            e.out,
            "tributary_log_bytes{topic=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }

    #[test]
    fn the_log_alone_renders_its_metrics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path()).expect("log");
        log.create_topic("t", tributary_log::TopicConfig::default())
            .expect("topic");
        let text = render(&log, None);
        assert!(
            text.contains("# TYPE tributary_log_fsync_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("tributary_log_fsync_seconds_bucket{le=\"+Inf\"} "),
            "{text}"
        );
        assert!(
            text.contains("tributary_log_segments{topic=\"t\"} "),
            "{text}"
        );
        for m in ALL {
            assert!(text.contains(&format!("# HELP {} ", m.name)), "{}", m.name);
        }
    }
}
