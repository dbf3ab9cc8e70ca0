//! `tributary`: the command-line entry point.

mod bench;
mod client;
mod consume;
mod datadir;
mod grpc;
mod http;
mod offsets;
mod pipeline;
mod produce;
mod records;
mod schemas;
mod search;
mod serve;
mod status;
mod topics;

/// See the workspace Cargo.toml: why the binary does not use the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tributary: change data capture into a partitioned, replayable log.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, propagate_version = true)]
struct Cli {
    /// Log filter, as in RUST_LOG (e.g. `info`, `tributary_log=debug`).
    #[arg(long, global = true, env = "TRIBUTARY_LOG", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure Tributary against reference systems in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a pipeline (YAML): its sources into the embedded log, until
    /// SIGINT or SIGTERM.
    Run(pipeline::RunArgs),
    /// Check a pipeline file and, unless --offline, what it needs of its
    /// sources (wal_level, privileges, tables, keys).
    Validate(pipeline::ValidateArgs),
    /// Run the hub: the log, the schema registry's HTTP API, search over
    /// the sinks' indexes, and the gRPC API.
    Serve(serve::ServeArgs),
    /// Query a tantivy sink's index: one JSON hit per line.
    Search(search::SearchArgs),
    /// Inspect the topics of a data directory.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Print a topic's records as JSON lines, decoded with the registry.
    Consume(consume::ConsumeArgs),
    /// Append JSON lines from stdin to a topic, each checked against its
    /// registered schemas.
    Produce(produce::ProduceArgs),
    /// List or reset consumer groups' offsets.
    #[command(subcommand)]
    Offsets(offsets::OffsetsCommand),
    /// The schema registry's subjects and versions.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Every connector of the running hub's pipeline: state, position,
    /// lag, rate, restarts, last error.
    Status(status::StatusArgs),
    /// Restart a failed source or a paused sink of the running hub's
    /// pipeline, once what stopped it is fixed.
    Restart(status::RestartArgs),
    /// A source's tables: take a quarantined one back.
    #[command(subcommand)]
    Tables(status::TablesCommand),
}

/// Where the log keeps its data unless told otherwise.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("./tributary-data")
}

fn main() -> std::process::ExitCode {
    // Errors are for people: the message and its causes, no backtrace.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log_level)?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Topics(cmd) => topics::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Search(args) => search::run(args),
        Command::Run(args) => pipeline::run(args),
        Command::Validate(args) => pipeline::validate(args),
        Command::Consume(args) => consume::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Offsets(cmd) => offsets::run(cmd),
        Command::Schemas(cmd) => schemas::run(cmd),
        Command::Status(args) => status::run(args),
        Command::Restart(args) => status::restart(args),
        Command::Tables(cmd) => status::tables(cmd),
    }
}

/// The async runtime every command runs on: two worker threads, one per
/// core of the machines we size for.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
