//! `tributary bench avro`: the direct envelope encoder and decoder against
//! apache-avro's generic `Value` path, on the same events, one thread.

use std::time::Instant;

use tributary_core::{
    ChangeEvent, Column, ColumnType, Datum, Op, Position, SnapshotFlag, SourceInfo, TableSchema,
};
use tributary_schemas::{Connector, EventSchema};

use super::{rate, ratio};

#[derive(Debug, clap::Args)]
pub struct AvroBenchArgs {
    /// Events to encode and decode.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}

/// Distinct events generated; the run cycles over them.
const DISTINCT: usize = 10_000;

fn col(name: &str, ty: ColumnType, nullable: bool, db_type: &str) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
        may_be_unavailable: false,
        db_type: db_type.into(),
    }
}

/// A 10-column table of mixed types.
fn table() -> TableSchema {
    TableSchema {
        database: "shop".into(),
        schema: "public".into(),
        table: "customers".into(),
        columns: vec![
            col("id", ColumnType::Long, false, "bigint"),
            col("name", ColumnType::Text, false, "text"),
            col("email", ColumnType::Text, true, "varchar(200)"),
            col("age", ColumnType::Int, true, "integer"),
            col(
                "balance",
                ColumnType::Decimal {
                    precision: 12,
                    scale: 2,
                    specials: true,
                },
                false,
                "numeric(12,2)",
            ),
            col("active", ColumnType::Boolean, false, "boolean"),
            col("created_at", ColumnType::TimestampTz, false, "timestamptz"),
            col("score", ColumnType::Double, true, "double precision"),
            col("external_id", ColumnType::Uuid, false, "uuid"),
            col("note", ColumnType::Text, true, "text"),
        ],
        key: vec![0],
    }
}

fn events() -> Vec<ChangeEvent> {
    (0..DISTINCT as i64)
        .map(|i| {
            let cents = i * 137 % 10_000_000;
            ChangeEvent {
                op: Op::Create,
                before: None,
                after: Some(vec![
                    Datum::Long(i),
                    Datum::Text(format!("customer {i}")),
                    if i % 7 == 0 {
                        Datum::Null
                    } else {
                        Datum::Text(format!("c{i}@example.com"))
                    },
                    Datum::Int((i % 90) as i32),
                    Datum::Decimal {
                        unscaled: cents.to_be_bytes()[4..].to_vec(),
                        scale: 2,
                    },
                    Datum::Bool(i % 2 == 0),
                    Datum::Long(1_700_000_000_000_000 + i * 1_000),
                    Datum::Double(i as f64 / 3.0),
                    Datum::Uuid((i as u128 * 0x9e37_79b9_7f4a_7c15).to_be_bytes()),
                    if i % 3 == 0 {
                        Datum::Null
                    } else {
                        Datum::Text("a short note".into())
                    },
                ]),
                source: std::sync::Arc::new(SourceInfo {
                    connector: "postgresql".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    name: "bench".into(),
                    ts_ms: 1_700_000_000_000 + i,
                    snapshot: SnapshotFlag::False,
                    db: "shop".into(),
                    schema: Some("public".into()),
                    table: "customers".into(),
                    position: Position::Postgres {
                        lsn: 0x1600_0000 + i as u64 * 64,
                        tx_id: Some(700 + i / 10),
                    },
                }),
                ts_ms: 1_700_000_000_100 + i,
                transaction: None,
            }
        })
        .collect()
}

#[allow(deprecated)] // to_avro_datum is apache-avro's plain Value path, the reference here
pub fn run(args: AvroBenchArgs) -> anyhow::Result<()> {
    let n = args.events as usize;
    anyhow::ensure!(n > 0, "--events must be positive");
    let schema = EventSchema::new("bench", Connector::Postgres, table())?;
    let evs = events();

    // Encode: into one reused buffer, as the write path does.
    let mut buf = Vec::with_capacity(1024);
    let mut total_bytes = 0usize;
    let started = Instant::now();
    for i in 0..n {
        buf.clear();
        schema.encode_value(&evs[i % DISTINCT], &mut buf)?;
        total_bytes += buf.len();
    }
    let encode_secs = started.elapsed().as_secs_f64();
    std::hint::black_box(total_bytes);

    // Decode: the distinct encodings, cycled the same way.
    let encoded: Vec<Vec<u8>> = evs
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            schema.encode_value(e, &mut b).map(|_| b)
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut check = 0usize;
    for i in 0..n {
        let ev = schema.decode_value(&encoded[i % DISTINCT])?;
        check += ev.after.as_ref().map_or(0, Vec::len);
    }
    let decode_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        check == n * 10,
        "decoded {check} values, expected {}",
        n * 10
    );
    for (e, b) in evs.iter().zip(&encoded).take(100) {
        anyhow::ensure!(
            &schema.decode_value(b)? == e,
            "decode does not give the event back"
        );
    }

    // apache-avro: build the generic Value and encode it.
    let started = Instant::now();
    let mut reference_bytes = 0usize;
    for i in 0..n {
        let v = schema.to_avro_value(&evs[i % DISTINCT])?;
        reference_bytes += apache_avro::to_avro_datum(schema.value_avro(), v)?.len();
    }
    let reference_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        reference_bytes == total_bytes,
        "apache-avro wrote {reference_bytes} bytes, we wrote {total_bytes}"
    );

    let encode = rate(n as u64, encode_secs);
    let decode = rate(n as u64, decode_secs);
    let reference = rate(n as u64, reference_secs);
    eprintln!("avg encoded size {} bytes", total_bytes / n);
    println!(
        "avro: encode {encode} ev/s, decode {decode} ev/s, apache-avro-value encode {reference} ev/s, speedup {}x",
        ratio(encode, reference)
    );
    Ok(())
}
