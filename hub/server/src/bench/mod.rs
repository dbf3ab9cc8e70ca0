//! `tributary bench ...`: each benchmark measures Tributary and a
//! reference system on the same data in the same run, and ends with one
//! summary line of plain numbers.

mod avro;
mod log;
mod mysql_source;
mod pg_snapshot;
mod pg_source;
mod sinks;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append then read back records through the log; the same records
    /// through Redis Streams (XADD) and NATS JetStream.
    Log(log::LogBenchArgs),
    /// Encode and decode change events with the direct Avro encoder; the
    /// same events through apache-avro's generic Value path.
    Avro(avro::AvroBenchArgs),
    /// Stream inserted rows from PostgreSQL into the log; the same changes
    /// through pg_recvlogical.
    PgSource(pg_source::PgSourceBenchArgs),
    /// Snapshot a table from PostgreSQL into the log; the same table
    /// through psql's \copy to /dev/null.
    PgSnapshot(pg_snapshot::PgSnapshotBenchArgs),
    /// Stream inserted rows from the MySQL/MariaDB binlog into the log;
    /// the same events through mariadb-binlog, rows decoded to text.
    MysqlSource(mysql_source::MysqlSourceBenchArgs),
    /// Apply change events already in the log with each sink; the same
    /// rows through each target's raw bulk path (COPY, pipelined HSET).
    Sinks(sinks::SinksBenchArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Log(args) => log::run(args),
        BenchCommand::Avro(args) => avro::run(args),
        BenchCommand::PgSource(args) => pg_source::run(args),
        BenchCommand::PgSnapshot(args) => pg_snapshot::run(args),
        BenchCommand::MysqlSource(args) => mysql_source::run(args),
        BenchCommand::Sinks(args) => sinks::run(args),
    }
}

/// Records per second, as a whole number.
pub(crate) fn rate(count: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        return 0;
    }
    (count as f64 / secs).round() as u64
}

/// `a / b` with two decimals; 0 when `b` is 0.
pub(crate) fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        return "0.00".into();
    }
    format!("{:.2}", a as f64 / b as f64)
}
