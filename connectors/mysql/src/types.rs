//! MySQL/MariaDB column definitions (from the schema history) to portable
//! column types, one mapping for the snapshot and the stream, so both
//! register the same table shape.
//!
//! Choices that differ from the obvious:
//! - MySQL allows zero dates (`0000-00-00`, or a zero month or day)
//!   where `sql_mode` lets them in; no day count holds them, so they
//!   travel as MySQL prints them, in the schema's source-text branch of
//!   DATE, DATETIME and TIMESTAMP columns (Debezium turns them into
//!   NULL, which is why those columns are nullable in the schema);
//! - `BIGINT UNSIGNED` is `decimal(20,0)`, `INT UNSIGNED` a long;
//! - `BIT(1)` is a boolean, wider `BIT(n)` bytes least significant first;
//! - MariaDB's `JSON` is an alias of `LONGTEXT` (with a `json_valid`
//!   check), and `SHOW CREATE TABLE` prints it so: on MariaDB it maps to
//!   text from both the DDL and the catalog, on MySQL to JSON.

use tributary_core::{Column, ColumnType};

use crate::ddl::{ColumnDef, TableDef};

/// Which server family: their types differ in a few places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB.
    MariaDb,
    /// Oracle MySQL.
    MySql,
}

/// A column the mapping does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: type {ty} is not supported")]
pub struct TypeError {
    /// The column.
    pub column: String,
    /// Its type as written.
    pub ty: String,
}

fn arg(c: &ColumnDef, i: usize) -> Option<u32> {
    c.args.get(i).and_then(|a| a.trim().parse().ok())
}

/// The type's name as the sinks read it: lowercased, with the arguments
/// that matter (`varchar(20)`, `decimal(65,30)`, `bigint unsigned`).
pub fn db_type(c: &ColumnDef) -> String {
    let mut s = c.base.clone();
    let keep_args = matches!(
        c.base.as_str(),
        "decimal"
            | "float"
            | "double"
            | "char"
            | "varchar"
            | "binary"
            | "varbinary"
            | "bit"
            | "datetime"
            | "timestamp"
            | "time"
    );
    if keep_args && !c.args.is_empty() {
        s.push('(');
        s.push_str(&c.args.join(","));
        s.push(')');
    }
    if c.unsigned {
        s.push_str(" unsigned");
    }
    s
}

/// Whether the column holds bytes rather than characters.
pub fn is_binary(c: &ColumnDef) -> bool {
    matches!(
        c.base.as_str(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    ) || (matches!(
        c.base.as_str(),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
    ) && c.charset.as_deref() == Some("binary"))
}

/// The portable type of `c`.
pub fn column_type(c: &ColumnDef, flavor: Flavor) -> Result<ColumnType, TypeError> {
    let unsupported = || TypeError {
        column: c.name.clone(),
        ty: db_type(c),
    };
    if is_binary(c) {
        return Ok(ColumnType::Bytes);
    }
    Ok(match c.base.as_str() {
        "tinyint" | "smallint" | "mediumint" => ColumnType::Int,
        "int" if c.unsigned => ColumnType::Long,
        "int" => ColumnType::Int,
        "bigint" if c.unsigned => ColumnType::UnsignedLong,
        "bigint" => ColumnType::Long,
        "float" if arg(c, 0).is_some_and(|p| p > 24) && c.args.len() == 1 => ColumnType::Double,
        "float" => ColumnType::Float,
        "double" => ColumnType::Double,
        "decimal" => ColumnType::Decimal {
            precision: arg(c, 0).unwrap_or(10),
            scale: arg(c, 1).unwrap_or(0),
            specials: false,
        },
        "bit" if arg(c, 0).unwrap_or(1) == 1 => ColumnType::Boolean,
        "bit" => ColumnType::Bits(arg(c, 0).unwrap_or(1)),
        "date" => ColumnType::Date,
        "datetime" => ColumnType::Timestamp,
        "timestamp" => ColumnType::TimestampTz,
        "time" => ColumnType::Duration,
        "year" => ColumnType::Year,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnType::Text,
        "json" if flavor == Flavor::MariaDb => ColumnType::Text,
        "json" => ColumnType::Json,
        "enum" => ColumnType::Enum(c.args.clone()),
        "set" => ColumnType::Set(c.args.clone()),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnType::Geometry,
        _ => return Err(unsupported()),
    })
}

/// The portable column for `c`.
pub fn column(c: &ColumnDef, flavor: Flavor) -> Result<Column, TypeError> {
    let ty = column_type(c, flavor)?;
    let temporal = matches!(
        ty,
        ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampTz
    );
    Ok(Column {
        name: c.name.clone(),
        nullable: c.nullable || temporal,
        may_be_unavailable: false,
        db_type: if flavor == Flavor::MariaDb && c.base == "json" {
            "longtext".into()
        } else {
            db_type(c)
        },
        ty,
    })
}

/// A table's shape from its definition in the schema history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A column's type is unknown.
    #[error("table {table}: {source}")]
    Type {
        /// `db.table`.
        table: String,
        /// Which column.
        #[source]
        source: TypeError,
    },
    /// The table has no primary key.
    #[error(
        "table {table} has no primary key: its changes cannot be keyed. Fix: ALTER TABLE {table} ADD PRIMARY KEY (...), or leave it out of `tables`"
    )]
    NoKey {
        /// `db.table`.
        table: String,
    },
    /// A key column is not a column.
    #[error("table {table}: primary key column {column} is not a column of the table")]
    KeyColumn {
        /// `db.table`.
        table: String,
        /// The column.
        column: String,
    },
}

/// The portable table shape of `def` in database `db`.
pub fn table_schema(
    db: &str,
    def: &TableDef,
    flavor: Flavor,
) -> Result<tributary_core::TableSchema, ShapeError> {
    let qualified = format!("{db}.{}", def.name);
    let columns = def
        .columns
        .iter()
        .map(|c| column(c, flavor))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ShapeError::Type {
            table: qualified.clone(),
            source,
        })?;
    if def.primary_key.is_empty() {
        return Err(ShapeError::NoKey { table: qualified });
    }
    let mut key = Vec::with_capacity(def.primary_key.len());
    for k in &def.primary_key {
        let i = def
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(k))
            .ok_or_else(|| ShapeError::KeyColumn {
                table: qualified.clone(),
                column: k.clone(),
            })?;
        key.push(i);
    }
    Ok(tributary_core::TableSchema {
        database: db.to_string(),
        schema: db.to_string(),
        table: def.name.clone(),
        columns,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(base: &str, args: &[&str], unsigned: bool) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            base: base.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            unsigned,
            nullable: true,
            charset: None,
        }
    }

    #[test]
    fn integers_by_width_and_sign() {
        let t = |b, u| column_type(&def(b, &[], u), Flavor::MariaDb).expect("type");
        assert_eq!(t("tinyint", true), ColumnType::Int);
        assert_eq!(t("mediumint", true), ColumnType::Int);
        assert_eq!(t("int", false), ColumnType::Int);
        assert_eq!(t("int", true), ColumnType::Long);
        assert_eq!(t("bigint", false), ColumnType::Long);
        assert_eq!(t("bigint", true), ColumnType::UnsignedLong);
    }

    #[test]
    fn json_differs_by_flavor() {
        let j = def("json", &[], false);
        assert_eq!(
            column_type(&j, Flavor::MySql).expect("mysql"),
            ColumnType::Json
        );
        assert_eq!(
            column_type(&j, Flavor::MariaDb).expect("mariadb"),
            ColumnType::Text
        );
    }

    #[test]
    fn db_type_keeps_what_sinks_need() {
        assert_eq!(
            db_type(&def("decimal", &["65", "30"], false)),
            "decimal(65,30)"
        );
        assert_eq!(db_type(&def("int", &["11"], true)), "int unsigned");
        assert_eq!(db_type(&def("varchar", &["20"], false)), "varchar(20)");
        let mut b = def("varchar", &["4"], false);
        b.charset = Some("binary".into());
        assert_eq!(
            column_type(&b, Flavor::MySql).expect("bin"),
            ColumnType::Bytes
        );
        assert!(column_type(&def("vector", &[], false), Flavor::MySql).is_err());
    }
}
