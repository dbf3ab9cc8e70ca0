//! The registry's HTTP API, compatible with Confluent Schema Registry's
//! REST API (v1) for Avro schemas: same paths, bodies, content type
//! (`application/vnd.schemaregistry.v1+json`), error bodies
//! (`{"error_code": N, "message": "..."}`) and codes.
//!
//! Request bodies are read as JSON whatever their content type
//! (Confluent accepts `application/vnd.schemaregistry.v1+json`,
//! `application/vnd.schemaregistry+json` and `application/json`).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Compatibility, Registry, RegistryError, VersionSel};

/// Confluent's content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let code = e.code();
        let status = match code {
            40400..=40499 => StatusCode::NOT_FOUND,
            409 => StatusCode::CONFLICT,
            42200..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "schema registry storage error");
        }
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        // Confluent answers malformed bodies with 422 / 42201-style codes
        // for schemas; for an unparseable request body it is a 400.
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message,
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(body: Value) -> ApiResult {
    Ok(reply(StatusCode::OK, body))
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn parse_schema_body(body: &Bytes) -> Result<String, ApiError> {
    let b: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Unrecognized request body: {e}")))?;
    if let Some(t) = b.schema_type.as_deref()
        && t != "AVRO"
    {
        return Err(RegistryError::InvalidSchema(format!(
            "schemaType {t} is not supported, only AVRO"
        ))
        .into());
    }
    if !b.references.is_empty() {
        return Err(
            RegistryError::InvalidSchema("schema references are not supported".into()).into(),
        );
    }
    Ok(b.schema)
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}

fn version_json(v: &super::SchemaVersion) -> Value {
    json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema})
}

/// The routes, to be served under `/` (or nested by the hub).
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config).put(put_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(test_compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(test_compatibility_all),
        )
        .with_state(registry)
}

/// Runs a registry call on the blocking pool: sled I/O and its flush
/// (an fsync) must not stall the async workers.
async fn blocking<T: Send + 'static>(
    r: Registry,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(move || f(&r)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 50001,
            message: format!("Error in the backend data store: {e}"),
        }),
    }
}

async fn list_subjects(
    State(r): State<Registry>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let deleted = flag(&q, "deleted");
    ok(json!(blocking(r, move |r| r.subjects(deleted)).await?))
}

async fn list_versions(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    ok(json!(blocking(r, move |r| r.versions(&subject)).await?))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    let id = blocking(r, move |r| r.register(&subject, &schema)).await?;
    ok(json!({"id": id}))
}

async fn get_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    ok(version_json(
        &blocking(r, move |r| r.version(&subject, sel)).await?,
    ))
}

async fn get_version_schema(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    let v = blocking(r, move |r| r.version(&subject, sel)).await?;
    let schema: Value =
        serde_json::from_str(&v.schema).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
    ok(schema)
}

async fn lookup(State(r): State<Registry>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    ok(version_json(
        &blocking(r, move |r| r.lookup(&subject, &schema)).await?,
    ))
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let permanent = flag(&q, "permanent");
    ok(json!(
        blocking(r, move |r| r.delete_subject(&subject, permanent)).await?
    ))
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    let permanent = flag(&q, "permanent");
    ok(json!(
        blocking(r, move |r| r.delete_version(&subject, sel, permanent)).await?
    ))
}

async fn schema_by_id(State(r): State<Registry>, Path(id): Path<String>) -> ApiResult {
    let id: u32 = id
        .parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.clone()))?;
    // Soft-deleted versions keep their schema; `?deleted=true` is accepted
    // and needs no special handling.
    ok(json!({"schema": blocking(r, move |r| r.schema_by_id(id)).await?}))
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn parse_level(body: &Bytes) -> Result<Compatibility, ApiError> {
    let b: ConfigBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Unrecognized request body: {e}")))?;
    Ok(b.compatibility.to_ascii_uppercase().parse()?)
}

async fn get_global_config(State(r): State<Registry>) -> ApiResult {
    let level = blocking(r, |r| r.compatibility(None)).await?;
    ok(json!({"compatibilityLevel": level.as_str()}))
}

async fn put_global_config(State(r): State<Registry>, body: Bytes) -> ApiResult {
    let level = parse_level(&body)?;
    blocking(r, move |r| r.set_compatibility(None, level)).await?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn get_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (own, global) = {
        let subject = subject.clone();
        blocking(r, move |r| {
            Ok((r.subject_compatibility(&subject)?, r.compatibility(None)?))
        })
        .await?
    };
    match own {
        Some(level) => ok(json!({"compatibilityLevel": level.as_str()})),
        None if flag(&q, "defaultToGlobal") => ok(json!({"compatibilityLevel": global.as_str()})),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: 40408,
            message: format!(
                "Subject '{subject}' does not have subject-level compatibility configured"
            ),
        }),
    }
}

async fn put_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&body)?;
    blocking(r, move |r| r.set_compatibility(Some(&subject), level)).await?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn test_compatibility(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    let schema = parse_schema_body(&body)?;
    let problems = blocking(r, move |r| r.test_compatibility(&subject, sel, &schema)).await?;
    let mut out = json!({"is_compatible": problems.is_empty()});
    if flag(&q, "verbose") {
        out["messages"] = json!(problems);
    }
    ok(out)
}

/// Against every live version, under the subject's level made transitive.
async fn test_compatibility_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    let problems = blocking(r, move |r| r.test_compatibility_all(&subject, &schema)).await?;
    let mut out = json!({"is_compatible": problems.is_empty()});
    if flag(&q, "verbose") {
        out["messages"] = json!(problems);
    }
    ok(out)
}
