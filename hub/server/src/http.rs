//! The hub's HTTP API, served by `tributary serve` and `tributary run`:
//! the schema registry's routes, `GET /search/{index}`, and
//!
//! - `GET /metrics`: Prometheus text format (`tributary_pipeline::metrics`);
//! - `GET /health`: 200 while the process serves;
//! - `GET /ready`: 200 once every source is connected and capturing
//!   (with no pipeline: once the log is open), else 503 with the reason;
//! - `GET /pipelines`: every connector's status as JSON.
//!
//! With a token, every route (unknown ones too) answers 401 to a request
//! without `Authorization: Bearer <token>`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tributary_log::Log;
use tributary_pipeline::telemetry::Telemetry;
use tributary_schemas::Registry;

/// A bearer token: compared in constant time, never printed.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// `None` for an empty value (an unset `${VAR}` or `--token ""`):
    /// an empty token would let every request in.
    pub fn new(value: &str) -> Option<Self> {
        (!value.is_empty()).then(|| Self(value.into()))
    }

    /// The token itself, to send to a hub (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` value is `Bearer <this token>`.
    pub fn admits(&self, authorization: Option<&str>) -> Admission {
        let presented = authorization.and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        match presented {
            Some(p) if self.matches(p.as_bytes()) => Admission::Admitted,
            Some(_) => Admission::WrongToken,
            None => Admission::NoToken,
        }
    }

    /// Whether `presented` is the token; the time taken depends on the
    /// lengths only, not on where the first difference is.
    fn matches(&self, presented: &[u8]) -> bool {
        let want = self.0.as_bytes();
        let mut diff = u8::from(want.len() != presented.len());
        for i in 0..want.len().max(presented.len()) {
            let a = want.get(i).copied().unwrap_or(0);
            let b = presented.get(i).copied().unwrap_or(0);
            diff |= std::hint::black_box(a ^ b);
        }
        diff == 0
    }
}

/// What [`Token::admits`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The right token.
    Admitted,
    /// A bearer token, not this one.
    WrongToken,
    /// No bearer token at all.
    NoToken,
}

impl Admission {
    /// Why a request was refused (`None`: it was not).
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Admission::Admitted => None,
            Admission::WrongToken => Some("the bearer token is not valid"),
            Admission::NoToken => Some("this server requires Authorization: Bearer <token>"),
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Token {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s).ok_or_else(|| "the token is empty".to_string())
    }
}

/// What the API serves.
#[derive(Debug)]
pub struct Hub {
    /// The log (`/metrics` shows its topics).
    pub log: Log,
    /// The schema registry.
    pub registry: Registry,
    /// Where the search indexes are.
    pub search_root: PathBuf,
    /// The running pipeline, if any.
    pub telemetry: Option<Arc<Telemetry>>,
    /// The bearer token every request must present, if any.
    pub token: Option<Token>,
}

#[derive(Debug, Clone)]
struct Shared {
    log: Log,
    telemetry: Option<Arc<Telemetry>>,
}

/// The whole API.
pub fn router(hub: Hub) -> axum::Router {
    let shared = Shared {
        log: hub.log,
        telemetry: hub.telemetry,
    };
    let own = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/pipelines", get(pipelines))
        .route(
            "/pipelines/connectors/{name}/restart",
            axum::routing::post(restart),
        )
        .route(
            "/pipelines/connectors/{name}/tables/{table}/resume",
            axum::routing::post(resume_table),
        )
        .with_state(shared);
    let app = tributary_schemas::registry::http::router(hub.registry)
        .merge(crate::search::router(hub.search_root))
        .merge(own)
        .fallback(unknown);
    match hub.token {
        Some(token) => app.layer(axum::middleware::from_fn_with_state(token, authorize)),
        None => app,
    }
}

/// Lets a request through only with the token.
async fn authorize(State(token): State<Token>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match token.admits(authorization).refusal() {
        None => next.run(request).await,
        Some(message) => {
            // Confluent's error shape, which registry clients parse.
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(serde_json::json!({ "error_code": 401, "message": message })),
            )
                .into_response()
        }
    }
}

/// An error in Confluent's shape, which registry clients parse:
/// `{"error_code": <status>, "message": ...}`.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        Json(serde_json::json!({ "error_code": code.as_u16(), "message": message.into() })),
    )
        .into_response()
}

async fn unknown(uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
}

async fn metrics(State(s): State<Shared>) -> Response {
    let text = tokio::task::spawn_blocking(move || {
        tributary_pipeline::metrics::render(&s.log, s.telemetry.as_deref())
    })
    .await;
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(s): State<Shared>) -> Response {
    // The log is open before the server starts: without a pipeline, that
    // is all there is to wait for.
    match s.telemetry.as_deref().map_or(Ok(()), Telemetry::ready) {
        Ok(()) => Json(serde_json::json!({ "ready": true })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": reason.to_string() })),
        )
            .into_response(),
    }
}

async fn pipelines(State(s): State<Shared>) -> Response {
    let Some(t) = s.telemetry else {
        return Json(serde_json::json!([])).into_response();
    };
    // Lags read the log: off the async threads.
    match tokio::task::spawn_blocking(move || t.connectors()).await {
        Ok(views) => Json(views).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST /pipelines/connectors/{name}/restart`: a failed source or a
/// paused sink starts again (202); 404 for no such connector, 409 for one
/// that is not stopped by a failure.
async fn restart(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(t) = s.telemetry else {
        return error(StatusCode::NOT_FOUND, "no pipeline runs here");
    };
    match t.restart(&name) {
        Ok(role) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "restarting": name, "role": role })),
        )
            .into_response(),
        Err(e) => {
            let code = match e {
                tributary_pipeline::telemetry::RestartError::Unknown(_) => StatusCode::NOT_FOUND,
                tributary_pipeline::telemetry::RestartError::NotStopped { .. } => {
                    StatusCode::CONFLICT
                }
            };
            error(code, e.to_string())
        }
    }
}

/// `POST /pipelines/connectors/{name}/tables/{table}/resume`: takes a
/// quarantined table (`schema.table`) back (202); 404 for no such source,
/// 409 for a table that is not quarantined.
async fn resume_table(
    State(s): State<Shared>,
    Path((name, table)): Path<(String, String)>,
) -> Response {
    use tributary_pipeline::telemetry::ResumeError;
    let Some(t) = s.telemetry else {
        return error(StatusCode::NOT_FOUND, "no pipeline runs here");
    };
    match t.resume_table(&name, &table) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "resuming": table, "source": name })),
        )
            .into_response(),
        Err(e) => {
            let code = match e {
                ResumeError::UnknownSource(_) => StatusCode::NOT_FOUND,
                ResumeError::NotQuarantined { .. } => StatusCode::CONFLICT,
                ResumeError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, e.to_string())
        }
    }
}

/// Binds `addr` and says where on stdout: the first line, `http listening
/// on <addr>`, which tests and scripts read when they ask for port 0.
pub async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP API to {addr}"))?;
    Ok(listener)
}

/// Prints where `listener` listens (see [`bind`]).
pub fn announce(listener: &tokio::net::TcpListener) -> anyhow::Result<()> {
    use std::io::Write as _;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http listening");
    let mut out = std::io::stdout().lock();
    writeln!(out, "http listening on {addr}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_only() {
        let t = Token::new("s3cret").expect("token");
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b"s3crett"));
        assert!(!t.matches(b"S3cret"));
        assert!(!t.matches(b""));
        assert!(Token::new("").is_none());
        assert_eq!(format!("{t:?}"), "<redacted>");
    }
}
