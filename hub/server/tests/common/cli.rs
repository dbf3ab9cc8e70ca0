//! `tributary` commands as a user types them, their output captured.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `tributary`, without a hub address or token taken from the test's own
/// environment.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    c.env_remove("TRIBUTARY_HUB").env_remove("TRIBUTARY_TOKEN");
    c
}

/// `tributary ARGS` with `env` set and `stdin` written to its input
/// (`None`: closed at once); its exit status and output.
pub fn tributary(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    output(command().args(args).envs(env.iter().copied()), stdin)
}

/// `tributary ARGS --data-dir DATA`, `stdin` as for [`tributary`].
pub fn tributary_on(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    output(command().args(args).arg("--data-dir").arg(data), stdin)
}

/// `tributary search INDEX ARGS`.
pub fn search(index: &Path, args: &[&str]) -> Output {
    output(command().arg("search").arg(index).args(args), None)
}

fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tributary");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// What the command printed on stdout; it must have exited 0 (otherwise
/// the test fails with its stderr).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the command printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
