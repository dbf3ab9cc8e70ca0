//! The schema registry over real HTTP, with Confluent's wire format, the
//! real `schema_registry_converter` client, and the validated write path.

mod http;
mod write;

use tributary_core::{
    ChangeEvent, Column, ColumnType, Datum, Op, Position, SnapshotFlag, SourceInfo, TableSchema,
};
use tributary_schemas::Registry;

/// Serves the registry's HTTP API on a free loopback port.
pub async fn serve(registry: Registry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = tributary_schemas::registry::http::router(registry);
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

pub fn table() -> TableSchema {
    let col = |name: &str, ty: ColumnType, nullable: bool| Column {
        name: name.into(),
        ty,
        nullable,
        may_be_unavailable: name == "bio",
        db_type: String::new(),
    };
    TableSchema {
        database: "shop".into(),
        schema: "public".into(),
        table: "customers".into(),
        columns: vec![
            col("id", ColumnType::Long, false),
            col("name", ColumnType::Text, false),
            col(
                "balance",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                    specials: true,
                },
                true,
            ),
            col("born", ColumnType::Date, true),
            col("seen_at", ColumnType::TimestampTz, true),
            col("external-id", ColumnType::Uuid, false),
            col("bio", ColumnType::Text, true),
        ],
        key: vec![0],
    }
}

pub fn event(id: i64, op: Op) -> ChangeEvent {
    let row = vec![
        Datum::Long(id),
        Datum::Text(format!("customer {id}")),
        Datum::Decimal {
            unscaled: vec![0x30, 0x39],
            scale: 2,
        },
        Datum::Int(10_000 + id as i32),
        Datum::Long(1_700_000_000_000_000 + id),
        Datum::Uuid([id as u8; 16]),
        if id % 2 == 0 {
            Datum::Unavailable
        } else {
            Datum::Text("hello".into())
        },
    ];
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        _ => (None, Some(row)),
    };
    ChangeEvent {
        op,
        before,
        after,
        source: std::sync::Arc::new(SourceInfo {
            connector: "postgresql".into(),
            version: "0.1.0".into(),
            name: "pg".into(),
            ts_ms: 1_700_000_000_000 + id,
            snapshot: SnapshotFlag::False,
            db: "shop".into(),
            schema: Some("public".into()),
            table: "customers".into(),
            position: Position::Postgres {
                lsn: 4096 + id as u64,
                tx_id: Some(77),
            },
        }),
        ts_ms: 1_700_000_000_001,
        transaction: None,
    }
}
