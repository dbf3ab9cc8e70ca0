//! Table shapes from PostgreSQL's catalog.

use std::collections::HashMap;

use tokio_postgres::Client;
use tributary_core::{Column, TableSchema};

use crate::types::{self, CustomType, TypeError};

/// Errors reading the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The query failed.
    #[error("reading the catalog for {table}: {source}")]
    Query {
        /// `schema.table`.
        table: String,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No such table.
    #[error("table {0} does not exist")]
    NoTable(String),
    /// A column type without a mapping.
    #[error("table {table}, column {column} ({db_type}): {source}")]
    Type {
        /// `schema.table`.
        table: String,
        /// Column.
        column: String,
        /// Type as the database names it.
        db_type: String,
        /// Cause.
        #[source]
        source: TypeError,
    },
    /// Neither a primary key nor a replica identity index.
    #[error(
        "table {0} has no primary key and no REPLICA IDENTITY index: add a primary key, or run ALTER TABLE {0} REPLICA IDENTITY USING INDEX <unique index> (or REPLICA IDENTITY FULL)"
    )]
    NoKey(String),
}

/// Reads the shape of `schema.table` in database `database`.
pub async fn table_schema(
    client: &Client,
    database: &str,
    schema: &str,
    table: &str,
) -> Result<TableSchema, CatalogError> {
    let qualified = format!("{schema}.{table}");
    let q = |source| CatalogError::Query {
        table: qualified.clone(),
        source,
    };
    let rows = client
        .query(
            "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, \
                    format_type(a.atttypid, a.atttypmod), \
                    COALESCE(a.attnum = ANY(ri.indkey::int2[]), false) \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN LATERAL ( \
                 SELECT i.indkey FROM pg_index i \
                 WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident) \
                 ORDER BY i.indisreplident DESC LIMIT 1) ri ON true \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(q)?;
    if rows.is_empty() {
        return Err(CatalogError::NoTable(qualified));
    }
    let oids: Vec<u32> = rows.iter().map(|r| r.get::<_, u32>(1)).collect();
    let custom = custom_types(client, &oids).await.map_err(q)?;
    let lookup = |o: u32| custom.get(&o).cloned();
    let mut columns = Vec::with_capacity(rows.len());
    let mut key = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let name: String = r.get(0);
        let db_type: String = r.get(4);
        let (ty, toastable) =
            types::column_type(r.get(1), r.get(2), &lookup).map_err(|source| {
                CatalogError::Type {
                    table: qualified.clone(),
                    column: name.clone(),
                    db_type: db_type.clone(),
                    source,
                }
            })?;
        if r.get::<_, bool>(5) {
            key.push(i);
        }
        columns.push(Column {
            name,
            ty,
            nullable: !r.get::<_, bool>(3),
            may_be_unavailable: toastable,
            db_type,
        });
    }
    let full: bool = client
        .query_one(
            "SELECT c.relreplident = 'f' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await
        .map_err(q)?
        .get(0);
    if key.is_empty() {
        if !full {
            return Err(CatalogError::NoKey(qualified));
        }
        // REPLICA IDENTITY FULL without a key: the whole row identifies it.
        key = (0..columns.len()).collect();
    }
    if !full {
        // Without REPLICA IDENTITY FULL, deletes (and key changes) carry
        // only the old key: every other column can be unavailable in a
        // before-image.
        for (i, c) in columns.iter_mut().enumerate() {
            if !key.contains(&i) {
                c.may_be_unavailable = true;
            }
        }
    }
    Ok(TableSchema {
        database: database.to_string(),
        schema: schema.to_string(),
        table: table.to_string(),
        columns,
        key,
    })
}

/// Enums, domains and arrays among `oids` (and, recursively, their parts).
async fn custom_types(
    client: &Client,
    oids: &[u32],
) -> Result<HashMap<u32, CustomType>, tokio_postgres::Error> {
    let mut out = HashMap::new();
    let mut pending: Vec<u32> = oids.to_vec();
    while !pending.is_empty() {
        let rows = client
            .query(
                "SELECT t.oid, t.typtype::text, t.typbasetype, t.typtypmod, t.typelem, t.typcategory::text, \
                        ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
                 FROM pg_type t WHERE t.oid = ANY($1) AND (t.oid >= 16384 OR t.typcategory = 'A')",
                &[&pending],
            )
            .await?;
        pending.clear();
        for r in rows {
            let oid: u32 = r.get(0);
            let typtype: String = r.get(1);
            let category: String = r.get(5);
            let t = if category == "A" {
                let elem: u32 = r.get(4);
                pending.push(elem);
                CustomType::Array(elem)
            } else if typtype == "e" {
                CustomType::Enum(r.get(6))
            } else if typtype == "d" {
                let base: u32 = r.get(2);
                pending.push(base);
                CustomType::Domain {
                    base,
                    modifier: r.get(3),
                }
            } else {
                continue;
            };
            out.insert(oid, t);
        }
        pending.retain(|o| !out.contains_key(o));
    }
    Ok(out)
}

/// The shape of a table as a pgoutput Relation message describes it at
/// that point of the stream (names, types and key flags from the message,
/// so a later ALTER TABLE does not leak backwards); only nullability and
/// custom types (enum labels, domain bases) come from the catalog.
pub async fn relation_schema(
    client: &Client,
    database: &str,
    namespace: &str,
    name: &str,
    columns: &[crate::pgoutput::RelationColumn],
    replica_identity: u8,
) -> Result<TableSchema, CatalogError> {
    let qualified = format!("{namespace}.{name}");
    let q = |source| CatalogError::Query {
        table: qualified.clone(),
        source,
    };
    let rows = client
        .query(
            "SELECT a.attname, a.attnotnull, format_type(a.atttypid, a.atttypmod), \
                    COALESCE(a.attnum = ANY(ri.indkey::int2[]), false) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN LATERAL ( \
                 SELECT i.indkey FROM pg_index i \
                 WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident) \
                 ORDER BY i.indisreplident DESC LIMIT 1) ri ON true \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&namespace, &name],
        )
        .await
        .map_err(q)?;
    let now: HashMap<String, (bool, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, bool>(1), r.get::<_, String>(2)),
            )
        })
        .collect();
    // The primary key (or replica identity index) by name: with REPLICA
    // IDENTITY FULL the message flags every column, but the row's key is
    // still the primary key, as the snapshot sees it.
    let index_key: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(3))
        .map(|r| r.get::<_, String>(0))
        .collect();
    let oids: Vec<u32> = columns.iter().map(|c| c.type_oid).collect();
    let custom = custom_types(client, &oids).await.map_err(q)?;
    let lookup = |o: u32| custom.get(&o).cloned();
    let full = replica_identity == b'f';
    let mut out = Vec::with_capacity(columns.len());
    let mut key = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let (ty, toastable) =
            types::column_type(c.type_oid, c.type_modifier, &lookup).map_err(|source| {
                CatalogError::Type {
                    table: qualified.clone(),
                    column: c.name.clone(),
                    db_type: format!("type oid {}", c.type_oid),
                    source,
                }
            })?;
        if (full && index_key.contains(&c.name)) || (!full && c.key) {
            key.push(i);
        }
        let (not_null, db_type) = now
            .get(&c.name)
            .cloned()
            .unwrap_or((false, format!("type oid {}", c.type_oid)));
        out.push(Column {
            name: c.name.clone(),
            ty,
            nullable: !not_null,
            may_be_unavailable: toastable || (!full && !c.key),
            db_type,
        });
    }
    if key.is_empty() {
        if !full {
            return Err(CatalogError::NoKey(qualified));
        }
        key = (0..out.len()).collect();
    }
    Ok(TableSchema {
        database: database.to_string(),
        schema: namespace.to_string(),
        table: name.to_string(),
        columns: out,
        key,
    })
}
