//! What the `tributary run` tests share: the process, started and stopped.
#![allow(dead_code)] // Each test binary uses part of it.

use std::process::{Child, Command, ExitStatus, Stdio};

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
        Command::new(env!("CARGO_BIN_EXE_tributary"))
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

/// SIGTERM, then the exit status and what the process printed.
pub fn terminate(mut running: Running) -> (ExitStatus, String) {
    let child = running.0.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
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

/// Waits up to 60 s until the source's rows (`want`) and the target's
/// (`got`) are the same; otherwise panics with the first differences.
pub async fn wait_same_rows(
    what: &str,
    mut want: impl AsyncFnMut() -> Vec<String>,
    mut got: impl AsyncFnMut() -> Vec<String>,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (w, g) = (want().await, got().await);
        if w == g {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let diff: Vec<_> = w.iter().zip(&g).filter(|(a, b)| a != b).take(3).collect();
            panic!(
                "{what}: the target never matched: {} rows in the source, {} in the target; first differences {diff:?}",
                w.len(),
                g.len()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .args(if grpc_given {
            &[][..]
        } else {
            &["--grpc", "127.0.0.1:0"][..]
        })
        .env_remove("TRIBUTARY_TOKEN")
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

impl Serving {
    /// The process's id.
    pub fn id(&self) -> u32 {
        self.running.0.as_ref().map_or(0, Child::id)
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
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait");
        let out = self
            .rest
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, out)
    }
}
