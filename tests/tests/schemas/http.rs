//! The Confluent-compatible HTTP API: a real client
//! (`schema_registry_converter`) both ways, and every endpoint and error
//! code over raw HTTP.

#![allow(deprecated)] // apache-avro's plain to_avro_datum is the reference encoder

use reqwest::StatusCode;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use serde_json::{Value, json};
use tributary_core::Op;
use tributary_schemas::{Connector, EventSchema, Registry, wire};

use super::{event, serve, table};

const CT: &str = "application/vnd.schemaregistry.v1+json";

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(ct.as_deref(), Some(CT), "content type of a {status} answer");
    (status, resp.json().await.expect("json body"))
}

fn schema_body(schema: &Value) -> Value {
    json!({"schema": schema.to_string()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converter_reads_what_we_write_and_we_read_what_it_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = serve(Registry::open(dir.path()).expect("registry")).await;
    let schema = EventSchema::new("pg", Connector::Postgres, table()).expect("schema");
    let http = reqwest::Client::new();
    let (status, body) = send(
        http.post(format!("{url}/subjects/pg.customers-value/versions"))
            .header("content-type", CT)
            .json(&schema_body(schema.value_schema())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_u64().expect("id") as u32;

    // We encode, the converter decodes.
    let ev = event(1, Op::Create);
    let mut ours = Vec::new();
    wire::put_header(&mut ours, id);
    schema.encode_value(&ev, &mut ours).expect("encode");
    let decoder = AvroDecoder::new(SrSettings::new(url.clone()));
    let decoded = decoder
        .decode(Some(&ours))
        .await
        .expect("converter decodes our bytes");
    let reencoded =
        apache_avro::to_avro_datum(schema.value_avro(), decoded.value).expect("re-encode");
    assert_eq!(
        &reencoded[..],
        &ours[wire::HEADER_LEN..],
        "the converter saw exactly our event"
    );

    // The converter encodes, we decode.
    let encoder = AvroEncoder::new(SrSettings::new(url.clone()));
    let ev2 = event(2, Op::Update);
    let theirs = encoder
        .encode_value(
            schema.to_avro_value(&ev2).expect("value"),
            &SubjectNameStrategy::TopicNameStrategy("pg.customers".into(), false),
        )
        .await
        .expect("converter encodes against our registry");
    let (got_id, body) = wire::split(&theirs).expect("wire format");
    assert_eq!(got_id, id);
    assert_eq!(schema.decode_value(body).expect("we decode"), ev2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_and_error_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = serve(Registry::open(dir.path()).expect("registry")).await;
    let http = reqwest::Client::new();
    let v1 = json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]});
    let v2 = json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}, {"name": "b", "type": "string", "default": ""}]});
    let bad = json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}, {"name": "c", "type": "string"}]});

    // Register (no content type at all is accepted too), idempotently.
    let (s, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .body(schema_body(&v1).to_string()),
    )
    .await;
    assert_eq!((s, b.clone()), (StatusCode::OK, json!({"id": 1})));
    let (_, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .json(&schema_body(&v1)),
    )
    .await;
    assert_eq!(b, json!({"id": 1}));
    let (_, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .json(&schema_body(&v2)),
    )
    .await;
    assert_eq!(b, json!({"id": 2}));

    let (_, b) = send(http.get(format!("{url}/subjects"))).await;
    assert_eq!(b, json!(["s"]));
    let (_, b) = send(http.get(format!("{url}/subjects/s/versions"))).await;
    assert_eq!(b, json!([1, 2]));
    let (_, b) = send(http.get(format!("{url}/subjects/s/versions/latest"))).await;
    assert_eq!(b["version"], 2);
    assert_eq!(b["id"], 2);
    assert_eq!(b["subject"], "s");
    let (_, b) = send(http.get(format!("{url}/subjects/s/versions/1"))).await;
    assert_eq!(
        serde_json::from_str::<Value>(b["schema"].as_str().expect("schema")).expect("json"),
        v1
    );
    let (_, b) = send(http.get(format!("{url}/subjects/s/versions/1/schema"))).await;
    assert_eq!(b, v1);
    let (_, b) = send(
        http.post(format!("{url}/subjects/s"))
            .json(&schema_body(&v2)),
    )
    .await;
    assert_eq!(
        (b["version"].clone(), b["id"].clone()),
        (json!(2), json!(2))
    );
    let (_, b) = send(http.get(format!("{url}/schemas/ids/1?deleted=true"))).await;
    assert_eq!(
        serde_json::from_str::<Value>(b["schema"].as_str().expect("schema")).expect("json"),
        v1
    );

    // Compatibility and config.
    let (_, b) = send(http.get(format!("{url}/config"))).await;
    assert_eq!(b, json!({"compatibilityLevel": "BACKWARD"}));
    let (s, b) = send(
        http.post(format!(
            "{url}/compatibility/subjects/s/versions/latest?verbose=true"
        ))
        .json(&schema_body(&bad)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["is_compatible"], false);
    assert!(
        b["messages"][0].as_str().expect("message").contains("'c'"),
        "{b}"
    );
    let (_, b) = send(
        http.post(format!("{url}/compatibility/subjects/s/versions"))
            .json(&schema_body(&bad)),
    )
    .await;
    assert_eq!(b, json!({"is_compatible": false}));
    let (_, b) = send(
        http.post(format!("{url}/compatibility/subjects/s/versions"))
            .json(&schema_body(&v2)),
    )
    .await;
    assert_eq!(b, json!({"is_compatible": true}));
    let (s, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .json(&schema_body(&bad)),
    )
    .await;
    assert_eq!(
        (s, b["error_code"].clone()),
        (StatusCode::CONFLICT, json!(409))
    );
    assert!(
        b["message"].as_str().expect("message").contains("'c'"),
        "{b}"
    );
    let (s, b) = send(http.get(format!("{url}/config/s"))).await;
    assert_eq!(
        (s, b["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40408))
    );
    let (_, b) = send(
        http.put(format!("{url}/config/s"))
            .json(&json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(b, json!({"compatibility": "NONE"}));
    let (_, b) = send(http.get(format!("{url}/config/s"))).await;
    assert_eq!(b, json!({"compatibilityLevel": "NONE"}));
    let (_, b) = send(
        http.post(format!("{url}/compatibility/subjects/s/versions/latest"))
            .json(&schema_body(&bad)),
    )
    .await;
    assert_eq!(b, json!({"is_compatible": true}));
    let (_, b) = send(
        http.put(format!("{url}/config"))
            .json(&json!({"compatibility": "FULL"})),
    )
    .await;
    assert_eq!(b, json!({"compatibility": "FULL"}));

    // Error codes.
    let code = |b: &Value| b["error_code"].as_u64().expect("error_code");
    let (s, b) = send(http.get(format!("{url}/subjects/nope/versions"))).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 40401));
    assert_eq!(b["message"], "Subject 'nope' not found.");
    let (s, b) = send(http.get(format!("{url}/subjects/s/versions/9"))).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 40402));
    let (s, b) = send(http.get(format!("{url}/schemas/ids/99"))).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 40403));
    let (s, b) = send(http.post(format!("{url}/subjects/s")).json(&schema_body(
        &json!({"type": "record", "name": "Other", "fields": []}),
    )))
    .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 40403));
    let (s, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .json(&json!({"schema": "{\"type\": \"nonsense\"}"})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
    let (s, b) = send(
        http.post(format!("{url}/subjects/s/versions"))
            .json(&json!({"schema": "not json"})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, 42201));
    for v in ["0", "abc", "-2"] {
        let (s, b) = send(http.get(format!("{url}/subjects/s/versions/{v}"))).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            "version {v}"
        );
    }
    let (s, b) = send(
        http.put(format!("{url}/config"))
            .json(&json!({"compatibility": "SIDEWAYS"})),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, 42203));
    let (s, _) = send(http.post(format!("{url}/subjects/s/versions")).body("{")).await;
    assert!(s.is_client_error(), "malformed body: {s}");

    // Deletes: a version, then the subject (soft), then permanently.
    let (s, b) = send(http.delete(format!("{url}/subjects/s?permanent=true"))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, 40405),
        "permanent needs a soft delete first"
    );
    let (s, b) = send(http.delete(format!("{url}/subjects/s/versions/2?permanent=true"))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, 40407),
        "permanent needs a soft delete first"
    );
    let (_, b) = send(http.delete(format!("{url}/subjects/s/versions/2"))).await;
    assert_eq!(b, json!(2));
    let (s, b) = send(http.delete(format!("{url}/subjects/s/versions/2"))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, 40406),
        "already soft deleted"
    );
    let (_, b) = send(http.delete(format!("{url}/subjects/s"))).await;
    assert_eq!(b, json!([1]));
    let (s, b) = send(http.get(format!("{url}/subjects/s/versions"))).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, 40401));
    let (s, b) = send(http.delete(format!("{url}/subjects/s"))).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, 40404),
        "already soft deleted"
    );
    let (_, b) = send(http.get(format!("{url}/subjects?deleted=true"))).await;
    assert_eq!(b, json!(["s"]));
    let (_, b) = send(http.get(format!("{url}/schemas/ids/2?deleted=true"))).await;
    assert!(
        b["schema"].is_string(),
        "a deleted version's schema stays readable by id"
    );
    let (_, b) = send(http.delete(format!("{url}/subjects/s?permanent=true"))).await;
    assert_eq!(b, json!([1, 2]));
    let (_, b) = send(http.get(format!("{url}/subjects?deleted=true"))).await;
    assert_eq!(b, json!([]));
}
