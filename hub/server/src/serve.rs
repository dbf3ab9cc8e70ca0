//! `tributary serve`: the hub on its own — the log's data directory, the
//! schema registry's HTTP API, and `GET /search/{index}` over the search
//! indexes in the data directory's `search/`.

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
        let app = tributary_schemas::registry::http::router(registry)
            .merge(crate::search::router(args.data_dir.join("search")));
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("binding {}", args.http))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "schema registry listening");
        // The first line on stdout says where we listen (tests and
        // scripts read it when they ask for port 0).
        println!("http listening on {addr}");
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
