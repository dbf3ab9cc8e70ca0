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

async fn list_subjects(
    State(r): State<Registry>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    ok(json!(r.subjects(flag(&q, "deleted"))?))
}

async fn list_versions(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    ok(json!(r.versions(&subject)?))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    let id = r.register(&subject, &schema)?;
    ok(json!({"id": id}))
}

async fn get_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    ok(version_json(&r.version(&subject, sel)?))
}

async fn get_version_schema(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    let v = r.version(&subject, sel)?;
    let schema: Value =
        serde_json::from_str(&v.schema).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
    ok(schema)
}

async fn lookup(State(r): State<Registry>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = parse_schema_body(&body)?;
    ok(version_json(&r.lookup(&subject, &schema)?))
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    ok(json!(r.delete_subject(&subject, flag(&q, "permanent"))?))
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let sel: VersionSel = version.parse()?;
    ok(json!(r.delete_version(&subject, sel)?))
}

async fn schema_by_id(State(r): State<Registry>, Path(id): Path<String>) -> ApiResult {
    let id: u32 = id
        .parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.clone()))?;
    // Soft-deleted versions keep their schema; `?deleted=true` is accepted
    // and needs no special handling.
    ok(json!({"schema": r.schema_by_id(id)?}))
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
    ok(json!({"compatibilityLevel": r.compatibility(None)?.as_str()}))
}

async fn put_global_config(State(r): State<Registry>, body: Bytes) -> ApiResult {
    let level = parse_level(&body)?;
    r.set_compatibility(None, level)?;
    ok(json!({"compatibility": level.as_str()}))
}

async fn get_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    match r.subject_compatibility(&subject)? {
        Some(level) => ok(json!({"compatibilityLevel": level.as_str()})),
        None if flag(&q, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": r.compatibility(None)?.as_str()}))
        }
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
    r.set_compatibility(Some(&subject), level)?;
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
    let problems = r.test_compatibility(&subject, sel, &schema)?;
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
    let problems = r.test_compatibility_all(&subject, &schema)?;
    let mut out = json!({"is_compatible": problems.is_empty()});
    if flag(&q, "verbose") {
        out["messages"] = json!(problems);
    }
    ok(out)
}
