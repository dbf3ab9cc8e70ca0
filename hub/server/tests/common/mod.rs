//! What the `tributary run` tests share: the process, started and stopped.

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
    Running(Some(
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .arg("run")
            .arg(file)
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
