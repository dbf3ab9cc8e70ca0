//! PostgreSQL restarted under a running source. A test binary of its own:
//! cargo runs test binaries one after another, so no other test sees the
//! server go away.

fn cluster() -> (String, String) {
    let out = std::process::Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .expect("a cluster on port 5432");
    let mut parts = line.split_whitespace();
    let version = parts.next().expect("version").to_string();
    let name = parts.next().expect("name").to_string();
    (version, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_stream_loses_and_repeats_nothing() {
    let (version, name) = cluster();
    tributary_tests::pg::stream_through_disruptions("restart", 2, |_| {
        let (version, name) = (version.clone(), name.clone());
        async move {
            let status = tokio::process::Command::new("pg_ctlcluster")
                .args([
                    "--skip-systemctl-redirect",
                    &version,
                    &name,
                    "restart",
                    "-m",
                    "fast",
                ])
                .status()
                .await
                .expect("pg_ctlcluster");
            assert!(status.success(), "restarting PostgreSQL failed");
        }
    })
    .await;
}
