//! What the hub's tests share: `tributary` processes (a pipeline run, a
//! serving hub, a CLI command), pipeline files, Redis. Helpers of the
//! services that need no `tributary` binary live in `tributary-tests`
//! (its polling helpers are re-exported here).
#![allow(dead_code)] // Each test binary uses part of it.

mod cache;
mod cli;
mod pipeline;

pub use cache::*;
pub use cli::*;
pub use pipeline::*;
#[allow(unused_imports)] // As above: not every binary polls with each.
pub use tributary_tests::{eventually, eventually_within, wait_same_rows};

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;

/// The running pipeline; killed if the test fails before stopping it.
pub struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `tributary run FILE`, its stdout captured.
pub fn start(file: &std::path::Path) -> Running {
    start_with_env(file, &[])
}

/// `tributary run FILE` with environment variables set. Its HTTP API
/// listens on a port of its own (tests run in parallel).
pub fn start_with_env(file: &std::path::Path, env: &[(&str, &str)]) -> Running {
    Running(Some(
        command()
            .arg("run")
            .arg(file)
            .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("TRIBUTARY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tributary run"),
    ))
}

/// Sends `kill -SIG` (`TERM`, `INT`) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// SIGTERM, then the exit status and what the process printed.
pub fn terminate(mut running: Running) -> (ExitStatus, String) {
    let child = running.0.take().expect("running");
    signal(child.id(), "TERM");
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// SIGTERM; the stop must be clean. Returns what the process printed.
pub fn stop(running: Running) -> String {
    let (status, out) = terminate(running);
    assert!(status.success(), "clean stop: {status}\n{out}");
    out
}

/// SIGKILL: no clean stop, as in a crash.
pub fn kill(mut running: Running) {
    let mut child = running.0.take().expect("running");
    child.kill().expect("kill");
    let _ = child.wait();
}

/// [`dead_letters`] once there are any, or after 30 s: a sink commits
/// the rows around a refused one before it writes the dead letter.
pub async fn wait_dead_letters(data: &std::path::Path, sink: &str) -> Vec<Vec<(String, String)>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let dead = dead_letters(data, sink);
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            return dead;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The headers of each record of `<sink>.dlq` in the pipeline's data dir.
pub fn dead_letters(data: &std::path::Path, sink: &str) -> Vec<Vec<(String, String)>> {
    let log = tributary_log::Log::open(data.join("log")).expect("log");
    let Ok(dlq) = log.topic(&format!("{sink}.dlq")) else {
        return Vec::new();
    };
    let p = dlq.partition(0).expect("partition");
    let mut out = Vec::new();
    for batch in p.read(0, 1 << 24).expect("read") {
        for r in batch.records().expect("records").iter() {
            let r = r.expect("valid");
            out.push(
                r.headers()
                    .map(|h| {
                        let (k, v) = h.expect("header");
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The value of header `name`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// A `tributary` process serving the HTTP and gRPC APIs.
pub struct Serving {
    running: Running,
    /// `http://<addr>` of its HTTP API.
    pub base: String,
    /// `http://<addr>` of its gRPC API.
    pub grpc: String,
    /// What it prints on stdout after the first line.
    rest: Option<std::thread::JoinHandle<String>>,
}

/// `tributary ARGS` (a command that serves: `run FILE` or `serve`; gRPC
/// on a port of its own unless ARGS say `--grpc`), with `env`, stderr to
/// `stderr` if given; returns once it listens, at the addresses it
/// printed first (`http listening on <addr>`, `grpc listening on
/// <addr>`).
pub fn serving(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    stderr: Option<&std::path::Path>,
) -> Serving {
    use std::io::{BufRead, Read};
    let err = match stderr {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("stderr file")),
        None => Stdio::inherit(),
    };
    let grpc_given = args.iter().any(|a| *a == "--grpc");
    let mut child = command()
        .args(args)
        .args(if grpc_given {
            &[][..]
        } else {
            &["--grpc", "127.0.0.1:0"][..]
        })
        .env("TRIBUTARY_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("spawn tributary");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let addr = first
        .trim()
        .strip_prefix("http listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}: the process did not start serving"))
        .to_string();
    let mut second = String::new();
    out.read_line(&mut second).expect("second line");
    let grpc = second
        .trim()
        .strip_prefix("grpc listening on ")
        .unwrap_or_else(|| panic!("second line {second:?}: the process did not serve gRPC"))
        .to_string();
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    Serving {
        running: Running(Some(child)),
        base: format!("http://{addr}"),
        grpc: format!("http://{grpc}"),
        rest: Some(rest),
    }
}

/// `tributary run FILE` (its `server:` section as written), serving.
pub fn run_serving(
    file: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Option<&std::path::Path>,
) -> Serving {
    serving(
        &[std::ffi::OsStr::new("run"), file.as_os_str()],
        env,
        stderr,
    )
}

/// `tributary serve --http 127.0.0.1:0 --data-dir DATA`, serving.
pub fn serve(
    data: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Option<&std::path::Path>,
) -> Serving {
    serving(
        &[
            std::ffi::OsStr::new("serve"),
            std::ffi::OsStr::new("--http"),
            std::ffi::OsStr::new("127.0.0.1:0"),
            std::ffi::OsStr::new("--data-dir"),
            data.as_os_str(),
        ],
        env,
        stderr,
    )
}

impl Serving {
    /// The process's id.
    pub fn id(&self) -> u32 {
        self.running.0.as_ref().map_or(0, Child::id)
    }

    /// `host:port` of its gRPC API.
    pub fn grpc_addr(&self) -> String {
        self.grpc.trim_start_matches("http://").to_string()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.running
            .0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then the exit status and what it printed after the first
    /// line.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.running.0.take().expect("running");
        signal(child.id(), "TERM");
        let status = child.wait().expect("wait");
        let out = self
            .rest
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, out)
    }

    /// SIGTERM; the stop must be clean. Returns what it printed after the
    /// first line.
    pub fn stop(self) -> String {
        let (status, out) = self.terminate();
        assert!(status.success(), "clean stop: {status}\n{out}");
        out
    }
}

/// `tributary consume ... --follow` running: each line it prints, as it
/// prints it. Killed if the test fails before interrupting it.
pub struct Follower {
    child: Option<Child>,
    /// Its stdout, line by line.
    pub lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// `tributary ARGS` (a `consume --follow`), its output read as it comes.
pub fn follow(args: &[&str]) -> Follower {
    use std::io::{BufRead as _, Read as _};
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume --follow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Follower {
        child: Some(child),
        lines,
        stderr: Some(stderr),
    }
}

impl Follower {
    /// SIGINT: it must end cleanly.
    pub fn interrupt(mut self) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "INT");
        let status = child.wait().expect("wait");
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        assert!(
            status.success(),
            "consume --follow ends cleanly on SIGINT: {status}\n{err}"
        );
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every record of `<name>.dlq` in the pipeline's data dir: headers and
/// value as JSON.
pub fn dead_letter_values(data: &std::path::Path, name: &str) -> Vec<serde_json::Value> {
    let log = tributary_log::Log::open(data.join("log")).expect("log");
    let Ok(dlq) = log.topic(&format!("{name}.dlq")) else {
        return Vec::new();
    };
    let p = dlq.partition(0).expect("partition");
    let mut out = Vec::new();
    for batch in p.read(0, 1 << 24).expect("read") {
        for r in batch.records().expect("records").iter() {
            let r = r.expect("valid");
            let mut v: serde_json::Value =
                serde_json::from_slice(r.value.unwrap_or_default()).expect("a JSON letter");
            for h in r.headers() {
                let (k, hv) = h.expect("header");
                v["headers"][k] = String::from_utf8_lossy(hv.unwrap_or_default()).into();
            }
            out.push(v);
        }
    }
    out
}
