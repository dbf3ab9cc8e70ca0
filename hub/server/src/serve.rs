//! `tributary serve`: the hub on its own — the log's data directory, the
//! schema registry's HTTP API, `GET /search/{index}` over the search
//! indexes in the data directory's `search/`, and the hub's own routes
//! (`/metrics`, `/health`, `/ready`, `/pipelines`: see [`crate::http`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tributary_schemas::Registry;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hub's data directory (log topics, registry, offsets).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    /// Address of the HTTP API (schema registry, search).
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: SocketAddr,
    /// Every HTTP request must carry `Authorization: Bearer <token>`
    /// (prefer the environment: a command line is visible to `ps`).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    token: Option<crate::http::Token>,
}

/// Where the registry keeps its data inside a data directory.
pub fn registry_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("registry")
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let log = tributary_log::Log::open(&args.data_dir)
            .with_context(|| format!("opening the log in {}", args.data_dir.display()))?;
        let registry = Registry::open(registry_dir(&args.data_dir))
            .with_context(|| format!("opening the registry in {}", args.data_dir.display()))?;
        let app = crate::http::router(crate::http::Hub {
            log: log.clone(),
            registry,
            search_root: args.data_dir.join("search"),
            telemetry: None,
            token: args.token,
        });
        let listener = crate::http::bind(&args.http.to_string()).await?;
        crate::http::announce(&listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
        log.flush()?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
