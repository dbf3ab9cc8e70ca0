//! The direct envelope encoder against apache-avro's generic `Value` path:
//! byte for byte equal on generated tables and events, and decoding gives
//! the event back.

// apache-avro 0.22 deprecates these in favour of GenericDatum*; they are
// the plain reference path we compare against.
#![allow(deprecated)]

use proptest::prelude::*;
use tributary_core::{
    ChangeEvent, Column, ColumnType, Datum, NumericSpecial, Op, Position, SnapshotFlag, SourceInfo,
    TableSchema, TransactionInfo,
};
use tributary_schemas::{Connector, EventSchema};

fn column_type() -> impl Strategy<Value = ColumnType> {
    let leaf = prop_oneof![
        Just(ColumnType::Boolean),
        Just(ColumnType::Int),
        Just(ColumnType::Long),
        Just(ColumnType::UnsignedLong),
        Just(ColumnType::Float),
        Just(ColumnType::Double),
        (1u32..38, 0u32..10, any::<bool>()).prop_map(|(p, s, specials)| ColumnType::Decimal {
            precision: p.max(s),
            scale: s,
            specials
        }),
        Just(ColumnType::VariableDecimal),
        Just(ColumnType::Money),
        Just(ColumnType::Text),
        Just(ColumnType::Json),
        Just(ColumnType::Enum(vec!["a".into(), "b c".into()])),
        Just(ColumnType::Set(vec!["x".into(), "y".into()])),
        Just(ColumnType::Bytes),
        Just(ColumnType::Bits(12)),
        Just(ColumnType::Geometry),
        Just(ColumnType::Date),
        Just(ColumnType::Time),
        Just(ColumnType::Duration),
        Just(ColumnType::TimeTz),
        Just(ColumnType::Timestamp),
        Just(ColumnType::TimestampTz),
        Just(ColumnType::Interval),
        Just(ColumnType::Uuid),
        Just(ColumnType::Year),
        Just(ColumnType::Point),
    ];
    prop_oneof![
        8 => leaf.clone(),
        1 => leaf.prop_map(|t| ColumnType::Array(Box::new(t))),
    ]
}

fn decimal_bytes(v: i64) -> Vec<u8> {
    let b = v.to_be_bytes();
    // Minimal two's complement.
    let mut i = 0;
    while i < 7 && ((b[i] == 0 && b[i + 1] & 0x80 == 0) || (b[i] == 0xff && b[i + 1] & 0x80 != 0)) {
        i += 1;
    }
    b[i..].to_vec()
}

fn main_datum(ty: &ColumnType) -> BoxedStrategy<Datum> {
    match ty {
        ColumnType::Boolean => any::<bool>().prop_map(Datum::Bool).boxed(),
        ColumnType::Int | ColumnType::Date | ColumnType::Year => {
            any::<i32>().prop_map(Datum::Int).boxed()
        }
        ColumnType::Long
        | ColumnType::Time
        | ColumnType::Duration
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => any::<i64>().prop_map(Datum::Long).boxed(),
        ColumnType::Float => (-1e30f32..1e30).prop_map(Datum::Float).boxed(),
        ColumnType::Double => (-1e300f64..1e300).prop_map(Datum::Double).boxed(),
        ColumnType::Text
        | ColumnType::Json
        | ColumnType::Enum(_)
        | ColumnType::Set(_)
        | ColumnType::TimeTz => "\\PC{0,20}".prop_map(Datum::Text).boxed(),
        ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry => {
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(Datum::Bytes)
                .boxed()
        }
        ColumnType::UnsignedLong => (0i64..i64::MAX)
            .prop_map(|v| Datum::Decimal {
                unscaled: decimal_bytes(v),
                scale: 0,
            })
            .boxed(),
        ColumnType::Money => any::<i64>()
            .prop_map(|v| Datum::Decimal {
                unscaled: decimal_bytes(v),
                scale: 2,
            })
            .boxed(),
        ColumnType::Decimal { scale, .. } => {
            let scale = *scale;
            (-999_999_999i64..999_999_999)
                .prop_map(move |v| Datum::Decimal {
                    unscaled: decimal_bytes(v),
                    scale,
                })
                .boxed()
        }
        ColumnType::VariableDecimal => (any::<i64>(), 0u32..20)
            .prop_map(|(v, scale)| Datum::Decimal {
                unscaled: decimal_bytes(v),
                scale,
            })
            .boxed(),
        ColumnType::Uuid => any::<[u8; 16]>().prop_map(Datum::Uuid).boxed(),
        ColumnType::Interval => (any::<i32>(), any::<i32>(), any::<i64>())
            .prop_map(|(months, days, micros)| Datum::Interval {
                months,
                days,
                micros,
            })
            .boxed(),
        ColumnType::Point => (-1e9f64..1e9, -1e9f64..1e9)
            .prop_map(|(x, y)| Datum::Point { x, y })
            .boxed(),
        ColumnType::Array(inner) => proptest::collection::vec(
            prop_oneof![1 => Just(Datum::Null), 4 => main_datum(inner)],
            0..4,
        )
        .prop_map(Datum::Array)
        .boxed(),
    }
}

fn datum(c: &Column) -> BoxedStrategy<Datum> {
    let mut options: Vec<(u32, BoxedStrategy<Datum>)> = vec![(6, main_datum(&c.ty))];
    if c.nullable {
        options.push((1, Just(Datum::Null).boxed()));
    }
    if c.may_be_unavailable {
        options.push((1, Just(Datum::Unavailable).boxed()));
    }
    if matches!(
        c.ty,
        ColumnType::VariableDecimal | ColumnType::Decimal { specials: true, .. }
    ) {
        options.push((
            1,
            prop_oneof![
                Just(NumericSpecial::NaN),
                Just(NumericSpecial::PositiveInfinity),
                Just(NumericSpecial::NegativeInfinity)
            ]
            .prop_map(Datum::NumericSpecial)
            .boxed(),
        ));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

fn table() -> impl Strategy<Value = TableSchema> {
    proptest::collection::vec((column_type(), any::<bool>(), any::<bool>()), 1..10).prop_map(
        |cols| {
            let mut columns = vec![Column {
                name: "id".into(),
                ty: ColumnType::Long,
                nullable: false,
                may_be_unavailable: false,
                db_type: "bigint".into(),
            }];
            for (i, (ty, nullable, unavailable)) in cols.into_iter().enumerate() {
                columns.push(Column {
                    name: format!("col-{i} x"),
                    ty,
                    nullable,
                    may_be_unavailable: unavailable,
                    db_type: "t".into(),
                });
            }
            TableSchema {
                database: "db".into(),
                schema: "public".into(),
                table: "my table".into(),
                columns,
                key: vec![0],
            }
        },
    )
}

fn row(t: &TableSchema) -> BoxedStrategy<Vec<Datum>> {
    let mut strategies: Vec<BoxedStrategy<Datum>> =
        vec![any::<i64>().prop_map(Datum::Long).boxed()];
    strategies.extend(t.columns[1..].iter().map(datum));
    strategies.boxed()
}

fn event(t: &TableSchema, connector: Connector) -> impl Strategy<Value = ChangeEvent> + use<> {
    let position = match connector {
        Connector::Postgres => (any::<u64>(), proptest::option::of(any::<i64>()))
            .prop_map(|(lsn, tx_id)| Position::Postgres {
                lsn: lsn >> 1,
                tx_id,
            })
            .boxed(),
        Connector::Mysql => (
            "[a-z.0-9]{1,12}",
            any::<u32>(),
            proptest::option::of("[0-9-]{1,12}"),
            any::<u32>(),
            any::<i32>(),
        )
            .prop_map(|(file, pos, gtid, server_id, row)| Position::Mysql {
                file,
                pos: u64::from(pos),
                gtid,
                server_id,
                row,
            })
            .boxed(),
    };
    (
        prop_oneof![
            Just(Op::Create),
            Just(Op::Update),
            Just(Op::Delete),
            Just(Op::Read),
            Just(Op::Truncate)
        ],
        proptest::option::of(row(t)),
        row(t),
        position,
        any::<i64>(),
        proptest::option::of(("[a-z0-9:]{1,10}", any::<i64>(), any::<i64>())),
    )
        .prop_map(move |(op, before, after, position, ts, tx)| {
            let (before, after) = match op {
                Op::Create | Op::Read => (None, Some(after)),
                Op::Update => (before, Some(after)),
                Op::Delete => (Some(after), None),
                Op::Truncate => (None, None),
            };
            ChangeEvent {
                op,
                before,
                after,
                source: std::sync::Arc::new(SourceInfo {
                    connector: connector.name().into(),
                    version: "0.1.0".into(),
                    name: "src".into(),
                    ts_ms: ts,
                    snapshot: SnapshotFlag::False,
                    db: "db".into(),
                    schema: match connector {
                        Connector::Postgres => Some("public".into()),
                        Connector::Mysql => None,
                    },
                    table: "my table".into(),
                    position,
                }),
                ts_ms: ts,
                transaction: tx.map(|(id, total_order, data_collection_order)| TransactionInfo {
                    id: id.into(),
                    total_order,
                    data_collection_order,
                }),
            }
        })
}

fn case() -> impl Strategy<Value = (EventSchema, ChangeEvent)> {
    (
        table(),
        prop_oneof![Just(Connector::Postgres), Just(Connector::Mysql)],
    )
        .prop_flat_map(|(t, c)| {
            let schema = EventSchema::new("src", c, t.clone()).expect("schema");
            event(&t, c).prop_map(move |e| (schema.clone(), e))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn direct_encoder_matches_apache_avro((schema, ev) in case()) {
        let mut ours = Vec::new();
        schema.encode_value(&ev, &mut ours).expect("encode");
        let value = schema.to_avro_value(&ev).expect("to value");
        let theirs = apache_avro::to_avro_datum(schema.value_avro(), value).expect("apache-avro encode");
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(schema.decode_value(&ours).expect("decode"), ev.clone());
        // apache-avro reads our bytes with the schema too.
        let read = apache_avro::from_avro_datum(schema.value_avro(), &mut &ours[..], None);
        prop_assert!(read.is_ok(), "{:?}", read);
        if let Some(row) = ev.after.as_ref().or(ev.before.as_ref()) {
            let mut key = Vec::new();
            schema.encode_key(row, &mut key).expect("key");
            prop_assert_eq!(schema.decode_key(&key).expect("decode key"), vec![row[0].clone()]);
        }
    }
}

fn unwrapped_case() -> impl Strategy<Value = (EventSchema, ChangeEvent)> {
    (
        table(),
        prop_oneof![Just(Connector::Postgres), Just(Connector::Mysql)],
    )
        .prop_flat_map(|(t, c)| {
            let schema = EventSchema::unwrapped("src", c, t.clone()).expect("schema");
            event(&t, c)
                .prop_filter("a truncate has no row", |e| e.op != Op::Truncate)
                .prop_map(move |e| (schema.clone(), e))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// An unwrap transform's records: apache-avro reads them with the
    /// registered schema, and they decode to the change they stand for
    /// (the row, its op, the source's commit time).
    #[test]
    fn unwrapped_rows_are_valid_avro_and_decode_to_their_change((schema, ev) in unwrapped_case()) {
        let mut ours = Vec::new();
        schema.encode_value(&ev, &mut ours).expect("encode");
        let read = apache_avro::from_avro_datum(schema.value_avro(), &mut &ours[..], None);
        prop_assert!(read.is_ok(), "{:?}", read);
        let back = schema.decode_value(&ours).expect("decode");
        prop_assert_eq!(back.op, ev.op);
        prop_assert_eq!(back.source.ts_ms, ev.source.ts_ms);
        if ev.op == Op::Delete {
            prop_assert_eq!(&back.before, &ev.before);
            prop_assert!(back.after.is_none());
        } else {
            prop_assert_eq!(&back.after, &ev.after);
            prop_assert!(back.before.is_none());
        }
        // The registered text rebuilds the same (unwrapped) schema.
        let again = tributary_schemas::described::event_schema(&schema.value_schema().to_string())
            .expect("rebuild");
        prop_assert!(again.is_unwrapped());
        prop_assert_eq!(again.decode_value(&ours).expect("decode again"), back);
    }
}

#[test]
fn wrong_values_name_the_field() {
    let t = TableSchema {
        database: "db".into(),
        schema: "public".into(),
        table: "t".into(),
        columns: vec![
            Column {
                name: "id".into(),
                ty: ColumnType::Long,
                nullable: false,
                may_be_unavailable: false,
                db_type: "bigint".into(),
            },
            Column {
                name: "price".into(),
                ty: ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                    specials: false,
                },
                nullable: false,
                may_be_unavailable: false,
                db_type: "numeric(10,2)".into(),
            },
        ],
        key: vec![0],
    };
    let s = EventSchema::new("src", Connector::Postgres, t).expect("schema");
    let mut ev = ChangeEvent {
        op: Op::Create,
        before: None,
        after: Some(vec![Datum::Long(1), Datum::Null]),
        source: std::sync::Arc::new(SourceInfo {
            connector: "postgresql".into(),
            version: "0".into(),
            name: "src".into(),
            ts_ms: 0,
            snapshot: SnapshotFlag::False,
            db: "db".into(),
            schema: Some("public".into()),
            table: "t".into(),
            position: Position::Postgres {
                lsn: 1,
                tx_id: None,
            },
        }),
        ts_ms: 0,
        transaction: None,
    };
    let err = s
        .encode_value(&ev, &mut Vec::new())
        .expect_err("null in NOT NULL");
    assert_eq!(err.field, "after.price");
    assert!(err.reason.contains("NOT NULL"), "{err}");
    ev.after = Some(vec![Datum::Long(1), Datum::Text("9.99".into())]);
    let err = s
        .encode_value(&ev, &mut Vec::new())
        .expect_err("wrong type");
    assert_eq!(err.field, "after.price");
    ev.after = Some(vec![
        Datum::Long(1),
        Datum::Decimal {
            unscaled: vec![3, 231],
            scale: 3,
        },
    ]);
    let err = s
        .encode_value(&ev, &mut Vec::new())
        .expect_err("wrong scale");
    assert!(err.reason.contains("scale 3"), "{err}");
    ev.after = Some(vec![Datum::Long(1)]);
    let err = s
        .encode_value(&ev, &mut Vec::new())
        .expect_err("missing column");
    assert_eq!(err.field, "after");
    ev.after = Some(vec![Datum::Long(1), Datum::Unavailable]);
    let err = s
        .encode_value(&ev, &mut Vec::new())
        .expect_err("unavailable not allowed");
    assert_eq!(err.field, "after.price");
}
