//! `tributary run FILE` and `tributary validate FILE`. `run` serves the
//! hub's HTTP API (see [`crate::http`]) at `server.http` and its gRPC API
//! ([`crate::grpc`]) at `server.grpc` while the pipeline runs, and stops
//! them with the pipeline.

use std::path::PathBuf;
use std::time::Duration;

use std::io::Write as _;

use anyhow::Context;
use tributary_pipeline::runtime::RunOptions;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file (YAML).
    file: PathBuf,
    /// Address of the HTTP API, instead of the file's `server.http`.
    #[arg(long)]
    http: Option<String>,
    /// Address of the gRPC API, instead of the file's `server.grpc`.
    #[arg(long)]
    grpc: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file (YAML).
    file: PathBuf,
    /// Only check the file: do not connect to sources and sinks.
    #[arg(long)]
    offline: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let p = tributary_pipeline::load(&args.file, &env)?;
    tributary_pipeline::runtime::supported(&p)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if !args.offline {
        let rt = crate::runtime()?;
        rt.block_on(async {
            for (i, s) in p.sources.iter().enumerate() {
                let tables = s.check_server().await.map_err(|e| {
                    anyhow::anyhow!("{}: sources[{i}] ({}): {e}", args.file.display(), s.name)
                })?;
                let names: Vec<String> = tables.iter().map(|(s, t)| format!("{s}.{t}")).collect();
                println!(
                    "sources[{i}] ({}): ok, {} tables: {}",
                    s.name,
                    names.len(),
                    names.join(", ")
                );
            }
            anyhow::Ok(())
        })?;
    }
    println!(
        "{}: valid ({} sources, {} transforms, {} sinks)",
        args.file.display(),
        p.sources.len(),
        p.transforms.len(),
        p.sinks.len()
    );
    Ok(())
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let p = tributary_pipeline::load(&args.file, &env)?;
    let http_addr = args.http.clone().unwrap_or_else(|| p.server.http.clone());
    let grpc_addr = args.grpc.clone().unwrap_or_else(|| p.server.grpc.clone());
    // The file's token, else the environment's: setting TRIBUTARY_TOKEN
    // never leaves the API open by surprise.
    let token = match &p.server.token {
        Some(t) => Some(
            crate::http::Token::new(t.expose())
                .ok_or_else(|| anyhow::anyhow!("{}: server.token is empty", args.file.display()))?,
        ),
        None => env("TRIBUTARY_TOKEN").and_then(|t| crate::http::Token::new(&t)),
    };
    let search_root = p.log.dir.join("search");
    let dd = crate::datadir::DataDir::create(&p.log.dir)?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        // Bound before anything starts: a taken port stops here.
        let listener = crate::http::bind(&http_addr).await?;
        let grpc = crate::grpc::bind(&grpc_addr).await?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        // First SIGINT/SIGTERM: stop cleanly. Second: leave now.
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            let _ = tx.send(true);
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            eprintln!("second signal: exiting without a clean stop");
            std::process::exit(130);
        });
        let running = tributary_pipeline::runtime::start(
            p,
            RunOptions {
                shutdown: rx,
                restart_initial: Duration::from_secs(1),
                restart_max: Duration::from_secs(60),
            },
        )
        .with_context(|| format!("running {}", args.file.display()))?;
        // The APIs answer until the pipeline has stopped.
        let (http_stop, mut http_stopped) = tokio::sync::watch::channel(false);
        let api = crate::grpc::Api::new(
            running.log.clone(),
            running.registry.clone(),
            std::sync::Arc::clone(&running.offsets),
            Some(std::sync::Arc::clone(&running.telemetry)),
            http_stopped.clone(),
        );
        let app = crate::http::router(crate::http::Hub {
            log: running.log.clone(),
            registry: running.registry.clone(),
            search_root,
            telemetry: Some(std::sync::Arc::clone(&running.telemetry)),
            token: token.clone(),
        });
        crate::http::announce(&listener)?;
        // Published before it is announced: whoever reads the line finds
        // the file.
        dd.publish_grpc(grpc.local_addr()?)?;
        crate::grpc::announce(&grpc)?;
        let grpc_server = tokio::spawn(crate::grpc::serve(grpc, api, token, http_stopped.clone()));
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_stopped.wait_for(|s| *s).await;
                })
                .into_future(),
        );
        let status = running.wait().await;
        let _ = http_stop.send(true);
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP API failed"),
            Err(e) => tracing::error!(error = %e, "the HTTP API's task failed"),
        }
        match grpc_server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the gRPC API failed"),
            Err(e) => tracing::error!(error = %e, "the gRPC API's task failed"),
        }
        dd.withdraw_grpc();
        let status = status.with_context(|| format!("running {}", args.file.display()))?;
        let st = status.lock().unwrap_or_else(|e| e.into_inner());
        for (name, c) in st.iter() {
            let state = c.state.name();
            // A closed stdout (the parent went away) is not worth a panic.
            let _ = writeln!(
                std::io::stdout(),
                "{} {name}: {state}, {} events, {} restarts{}",
                c.role,
                c.events,
                c.restarts,
                c.last_error
                    .as_ref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
        anyhow::Ok(())
    })
}
