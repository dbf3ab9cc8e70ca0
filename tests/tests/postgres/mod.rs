//! The PostgreSQL connector against the real local PostgreSQL. Each test
//! works in a database of its own, created and dropped here.

mod auth;
mod bigtx;
mod errors;
mod heartbeat;
mod publication;
mod reconnect;
mod resume;
mod schema_change;
mod snapshot;
mod snapshot_resume;
mod source;
mod stream;
mod types;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

pub use tributary_tests::pg::*;

/// Starts the `pg-source` child on `dir` and `db` (more arguments:
/// table, protocol version) and waits for it to say it started.
pub fn start_child(dir: &std::path::Path, db: &str, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pg-source"))
        .arg(dir)
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pg-source");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert_eq!(line.trim(), "started", "pg-source failed to start");
    child
}
