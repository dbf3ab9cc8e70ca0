//! `tributary`: the command-line entry point.

mod bench;
mod serve;
mod topics;

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
    /// Run the hub: the log and the schema registry's HTTP API.
    Serve(serve::ServeArgs),
    /// Inspect the topics of a data directory.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
}

/// Where the log keeps its data unless told otherwise.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("./tributary-data")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log_level)?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Topics(cmd) => topics::run(cmd),
        Command::Serve(args) => serve::run(args),
    }
}
