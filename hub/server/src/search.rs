//! `tributary search INDEX_DIR QUERY`: a tantivy sink's index queried
//! from the command line, one JSON hit per line; and `GET
//! /search/{index}?q=...&limit=N` on `tributary serve`, for the indexes
//! under the data directory's `search/` (where a tantivy sink without
//! `path:` keeps its index).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tributary_sink_tantivy::SearchError;

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The index directory (a tantivy sink's `path`).
    index: PathBuf,
    /// tantivy's query syntax over the row's columns: `name:ada`,
    /// `ada lovelace`, `balance:[10 TO 20]`; `*` matches every row.
    #[arg(required_unless_present = "all")]
    query: Option<String>,
    /// Every row (the query `*`).
    #[arg(long, conflicts_with = "query")]
    all: bool,
    /// At most this many hits, best first.
    #[arg(long, default_value_t = 10)]
    limit: usize,
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let query = match (&args.query, args.all) {
        (Some(q), false) => q.as_str(),
        _ => "*",
    };
    let hits = tributary_sink_tantivy::search(&args.index, query, args.limit)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for h in hits {
        writeln!(out, "{}", h.to_json())?;
    }
    out.flush()?;
    Ok(())
}

/// `GET /search/{index}` over the indexes in `root`.
pub fn router(root: PathBuf) -> axum::Router {
    axum::Router::new()
        .route("/search/{index}", axum::routing::get(search))
        .with_state(root)
}

#[derive(Debug, serde::Deserialize)]
struct Params {
    q: Option<String>,
    limit: Option<usize>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

async fn search(
    State(root): State<PathBuf>,
    UrlPath(index): UrlPath<String>,
    Query(params): Query<Params>,
) -> Response {
    // A sink's name: nothing that leaves `root`.
    let valid = !index.is_empty()
        && index
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return error(StatusCode::NOT_FOUND, format!("no search index {index:?}"));
    }
    let Some(q) = params.q else {
        return error(StatusCode::BAD_REQUEST, "the query parameter q is missing");
    };
    let dir = root.join(&index);
    let limit = params.limit.unwrap_or(10);
    let found = tokio::task::spawn_blocking(move || {
        tributary_sink_tantivy::search(Path::new(&dir), &q, limit)
    })
    .await;
    match found {
        Ok(Ok(hits)) => {
            let hits: Vec<serde_json::Value> = hits.iter().map(|h| h.to_json()).collect();
            Json(serde_json::json!({ "hits": hits })).into_response()
        }
        Ok(Err(SearchError::NotAnIndex(_))) => {
            error(StatusCode::NOT_FOUND, format!("no search index {index:?}"))
        }
        Ok(Err(e @ SearchError::Query(_))) => error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
