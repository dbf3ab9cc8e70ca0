//! `tributary serve`: the hub on its own — the log's data directory, the
//! schema registry's HTTP API, `GET /search/{index}` over the search
//! indexes in the data directory's `search/`, the hub's own routes
//! (`/metrics`, `/health`, `/ready`, `/pipelines`: see [`crate::http`]),
//! and the gRPC API ([`crate::grpc`]).
//!
//! The data directory is laid out as a pipeline's (see
//! [`crate::datadir`]): `serve` can be started on what `tributary run`
//! wrote, and the other commands find the same topics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::datadir::DataDir;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hub's data directory (log topics, registry, offsets): a
    /// pipeline's log.dir.
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    /// Address of the HTTP API (schema registry, search).
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: SocketAddr,
    /// Address of the gRPC API.
    #[arg(long, default_value = crate::client::DEFAULT_HUB)]
    grpc: String,
    /// Every HTTP request and gRPC call must carry `Authorization: Bearer
    /// <token>` (prefer the environment: a command line is visible to
    /// `ps`).
    #[arg(long, env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    token: Option<crate::http::Token>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dd = DataDir::create(&args.data_dir)?;
    let registry = dd.registry()?;
    let log = dd.hub_log(&registry)?;
    let offsets = Arc::new(dd.offsets()?);
    let rt = crate::runtime()?;
    rt.block_on(async move {
        let http = crate::http::bind(&args.http.to_string()).await?;
        let grpc = crate::grpc::bind(&args.grpc).await?;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let api = crate::grpc::Api::new(log.clone(), registry.clone(), offsets, None, stop.clone());
        let app = crate::http::router(crate::http::Hub {
            log: log.clone(),
            registry,
            search_root: dd.root().join("search"),
            telemetry: None,
            token: args.token.clone(),
        });
        crate::http::announce(&http)?;
        // Published before it is announced: whoever reads the line finds
        // the file.
        dd.publish_grpc(grpc.local_addr()?)?;
        crate::grpc::announce(&grpc)?;
        let grpc_server = tokio::spawn(crate::grpc::serve(grpc, api, args.token, stop));
        let served = axum::serve(http, app)
            .with_graceful_shutdown(shutdown())
            .await;
        let _ = stop_tx.send(true);
        match grpc_server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the gRPC API failed"),
            Err(e) => tracing::error!(error = %e, "the gRPC API's task failed"),
        }
        dd.withdraw_grpc();
        served?;
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
