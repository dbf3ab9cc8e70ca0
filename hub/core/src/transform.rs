//! Transforms: what a pipeline's `transforms:` do to change events on
//! their way from a source into the log.
//!
//! A transform applies to the events bound for a topic that one of its
//! patterns matches (after the routes of the transforms before it). For
//! each table the chain is folded once into a [`TablePlan`]: the shape the
//! log's records get (registered as the topic's schema), the topic they go
//! to, and what each event goes through. Planning refuses what would
//! corrupt the data (dropping or masking a key column, a rename onto an
//! existing column, masking a column that is not text), naming the
//! transform, the table and the column.
//!
//! - `filter`: keeps the events whose op is in `ops` (when given) and
//!   whose row (`after`, or `before` for deletes) satisfies `where`.
//!   Truncates have no row: only `ops` decides for them. A value the
//!   source could not see (unchanged TOAST) keeps the event: a filter
//!   never drops a change on a guess.
//! - `drop_columns`, `rename_columns`: the shape loses or renames columns
//!   (tables without them pass unchanged, so one transform can cover a
//!   pattern of tables).
//! - `mask_columns`: the column's values become [`MASK`] (NULL stays NULL).
//! - `route`: the topic becomes `to`, where `{topic}`, `{database}`,
//!   `{schema}` and `{table}` are replaced.
//! - `unwrap`: the topic's records hold the new row state instead of the
//!   change envelope (see `tributary-schemas`).

use crate::event::{ChangeEvent, ColumnType, Datum, Op, TableSchema};
use crate::pattern::matches;

/// What a masked value becomes.
pub const MASK: &str = "****";

/// A comparison of a filter's predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The right side of a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null` (only with `=` and `!=`).
    Null,
    /// A number (compared numerically with numeric columns).
    Number(f64),
    /// A quoted string, or `true`/`false` (compared with the value's text).
    Text(String),
}

/// Why a filter's `where` does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    /// No comparison operator.
    #[error("{text:?}: expected `column OP value` with OP one of = != < <= > >=")]
    NoOperator {
        /// The predicate (trimmed).
        text: String,
    },
    /// Nothing, or more than one word, before the operator.
    #[error("{text:?}: expected a column name before {op}")]
    NoColumn {
        /// The predicate (trimmed).
        text: String,
        /// The operator found.
        op: &'static str,
    },
    /// `null` with an ordering comparison.
    #[error("{text:?}: null compares with = or != only")]
    NullOrdered {
        /// The predicate (trimmed).
        text: String,
    },
    /// The right side is no literal.
    #[error("{text:?}: the value must be a number, 'quoted text', true, false or null")]
    BadValue {
        /// The predicate (trimmed).
        text: String,
    },
}

/// `column <cmp> literal`.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// Column name.
    pub column: String,
    /// Comparison.
    pub cmp: Cmp,
    /// Right side.
    pub value: Literal,
}

impl Predicate {
    /// Parses `column = 'text'`, `amount >= 10.5`, `deleted_at = null`,
    /// `active = true`.
    pub fn parse(s: &str) -> Result<Self, PredicateError> {
        let s = s.trim();
        let ops: [(&'static str, Cmp); 6] = [
            ("!=", Cmp::Ne),
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("=", Cmp::Eq),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ];
        let (at, op, cmp) = ops
            .iter()
            .filter_map(|(op, cmp)| s.find(op).map(|at| (at, *op, *cmp)))
            .min_by_key(|(at, op, _)| (*at, std::cmp::Reverse(op.len())))
            .ok_or_else(|| PredicateError::NoOperator {
                text: s.to_string(),
            })?;
        let column = s[..at].trim();
        let rhs = s[at + op.len()..].trim();
        if column.is_empty() || column.contains(char::is_whitespace) {
            return Err(PredicateError::NoColumn {
                text: s.to_string(),
                op,
            });
        }
        let value = if rhs.eq_ignore_ascii_case("null") {
            if !matches!(cmp, Cmp::Eq | Cmp::Ne) {
                return Err(PredicateError::NullOrdered {
                    text: s.to_string(),
                });
            }
            Literal::Null
        } else if let Some(inner) = rhs
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .filter(|_| rhs.len() >= 2)
        {
            Literal::Text(inner.replace("''", "'"))
        } else if rhs == "true" || rhs == "false" {
            Literal::Text(rhs.to_string())
        } else if let Ok(n) = rhs.parse::<f64>() {
            Literal::Number(n)
        } else {
            return Err(PredicateError::BadValue {
                text: s.to_string(),
            });
        };
        Ok(Self {
            column: column.to_string(),
            cmp,
            value,
        })
    }
}

/// What one transform does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Keep events whose op is in the list (all when `None`) and that
    /// satisfy the predicate (when given).
    Filter {
        /// Ops to keep.
        ops: Option<Vec<Op>>,
        /// Row predicate.
        predicate: Option<Predicate>,
    },
    /// Remove these columns.
    DropColumns(Vec<String>),
    /// Rename columns (old, new).
    RenameColumns(Vec<(String, String)>),
    /// Replace these text columns' values with [`MASK`].
    MaskColumns(Vec<String>),
    /// Send to this topic (a template).
    Route(String),
    /// Write the new row state instead of the envelope.
    Unwrap,
}

/// One configured transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Its name (for errors).
    pub name: String,
    /// Topic patterns it applies to.
    pub topics: Vec<String>,
    /// What it does.
    pub step: Step,
}

/// Why the transforms refuse a table: what would corrupt its data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A filter's `where` names a column the table does not have.
    #[error("transform {transform}: table {table} has no column {column:?} (its `where`)")]
    NoWhereColumn {
        /// The transform.
        transform: String,
        /// `schema.table`.
        table: String,
        /// The column the predicate names.
        column: String,
    },
    /// A key column would be dropped.
    #[error(
        "transform {transform}: column {column:?} is part of the key of table {table}: a key column cannot be dropped"
    )]
    DropKeyColumn {
        /// The transform.
        transform: String,
        /// The column.
        column: String,
        /// `schema.table`.
        table: String,
    },
    /// A rename onto a column that exists.
    #[error("transform {transform}: table {table} already has a column {new:?} (renaming {old:?})")]
    RenameOntoExisting {
        /// The transform.
        transform: String,
        /// `schema.table`.
        table: String,
        /// The column renamed.
        old: String,
        /// Its new name.
        new: String,
    },
    /// A key column would be masked.
    #[error(
        "transform {transform}: column {column:?} is part of the key of table {table}: a key column cannot be masked"
    )]
    MaskKeyColumn {
        /// The transform.
        transform: String,
        /// The column.
        column: String,
        /// `schema.table`.
        table: String,
    },
    /// A mask on a column that is not text.
    #[error(
        "transform {transform}: column {column:?} of table {table} is {db_type}: only text columns can be masked (drop it instead)"
    )]
    MaskNonText {
        /// The transform.
        transform: String,
        /// The column.
        column: String,
        /// `schema.table`.
        table: String,
        /// The column's database type.
        db_type: String,
    },
    /// A route renders to an empty topic name.
    #[error("transform {transform}: routes table {table} to an empty topic name")]
    EmptyRoute {
        /// The transform.
        transform: String,
        /// `schema.table`.
        table: String,
    },
}

/// A pipeline's transforms, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transforms(pub Vec<Transform>);

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    ops: Option<Vec<Op>>,
    /// Input column index, its type, comparison, literal.
    predicate: Option<(usize, ColumnType, Cmp, Literal)>,
}

/// The chain folded for one table of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    /// The topic the records go to.
    pub topic: String,
    /// The shape they have.
    pub table: TableSchema,
    /// Whether records hold the row state instead of the envelope.
    pub unwrap: bool,
    /// For each output column, its input column.
    pick: Vec<usize>,
    /// For each output column, whether it is masked.
    masked: Vec<bool>,
    filters: Vec<Filter>,
    /// Whether rows pass unchanged.
    same_rows: bool,
}

fn render_topic(template: &str, topic: &str, t: &TableSchema) -> String {
    template
        .replace("{topic}", topic)
        .replace("{database}", &t.database)
        .replace("{schema}", &t.schema)
        .replace("{table}", &t.table)
}

impl Transforms {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Folds the chain for `table`, whose events are bound for `topic`.
    pub fn plan(&self, topic: &str, table: &TableSchema) -> Result<TablePlan, PlanError> {
        let mut cur = table.clone();
        let mut topic = topic.to_string();
        let mut pick: Vec<usize> = (0..table.columns.len()).collect();
        let mut masked = vec![false; table.columns.len()];
        let mut filters = Vec::new();
        let mut unwrap = false;
        let qualified = table.qualified_name();
        for t in &self.0 {
            if !t.topics.iter().any(|p| matches(p, &topic)) {
                continue;
            }
            let find =
                |cur: &TableSchema, name: &str| cur.columns.iter().position(|c| c.name == name);
            let is_key = |cur: &TableSchema, j: usize| cur.key.contains(&j);
            match &t.step {
                Step::Filter { ops, predicate } => {
                    let predicate = match predicate {
                        None => None,
                        Some(p) => {
                            let j =
                                find(&cur, &p.column).ok_or_else(|| PlanError::NoWhereColumn {
                                    transform: t.name.clone(),
                                    table: qualified.clone(),
                                    column: p.column.clone(),
                                })?;
                            Some((pick[j], cur.columns[j].ty.clone(), p.cmp, p.value.clone()))
                        }
                    };
                    filters.push(Filter {
                        ops: ops.clone(),
                        predicate,
                    });
                }
                Step::DropColumns(cols) => {
                    for name in cols {
                        let Some(j) = find(&cur, name) else { continue };
                        if is_key(&cur, j) {
                            return Err(PlanError::DropKeyColumn {
                                transform: t.name.clone(),
                                column: name.clone(),
                                table: qualified,
                            });
                        }
                        cur.columns.remove(j);
                        pick.remove(j);
                        masked.remove(j);
                        for k in &mut cur.key {
                            if *k > j {
                                *k -= 1;
                            }
                        }
                    }
                }
                Step::RenameColumns(pairs) => {
                    for (old, new) in pairs {
                        let Some(j) = find(&cur, old) else { continue };
                        if find(&cur, new).is_some_and(|k| k != j) {
                            return Err(PlanError::RenameOntoExisting {
                                transform: t.name.clone(),
                                table: qualified,
                                old: old.clone(),
                                new: new.clone(),
                            });
                        }
                        cur.columns[j].name = new.clone();
                    }
                }
                Step::MaskColumns(cols) => {
                    for name in cols {
                        let Some(j) = find(&cur, name) else { continue };
                        if is_key(&cur, j) {
                            return Err(PlanError::MaskKeyColumn {
                                transform: t.name.clone(),
                                column: name.clone(),
                                table: qualified,
                            });
                        }
                        if cur.columns[j].ty != ColumnType::Text {
                            return Err(PlanError::MaskNonText {
                                transform: t.name.clone(),
                                column: name.clone(),
                                table: qualified,
                                db_type: cur.columns[j].db_type.clone(),
                            });
                        }
                        masked[j] = true;
                    }
                }
                Step::Route(to) => {
                    let next = render_topic(to, &topic, &cur);
                    if next.is_empty() {
                        return Err(PlanError::EmptyRoute {
                            transform: t.name.clone(),
                            table: qualified,
                        });
                    }
                    topic = next;
                }
                Step::Unwrap => unwrap = true,
            }
        }
        let same_rows = pick.len() == table.columns.len()
            && pick.iter().enumerate().all(|(i, &j)| i == j)
            && !masked.contains(&true);
        Ok(TablePlan {
            topic,
            table: cur,
            unwrap,
            pick,
            masked,
            filters,
            same_rows,
        })
    }
}

impl TablePlan {
    /// Whether the plan changes nothing: same topic, shape and events.
    pub fn is_identity(&self, topic: &str, table: &TableSchema) -> bool {
        self.topic == topic
            && !self.unwrap
            && self.filters.is_empty()
            && self.same_rows
            && self.table == *table
    }

    /// Whether the plan drops events.
    pub fn filters(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether `ev` passes the plan's filters.
    pub fn keeps(&self, ev: &ChangeEvent) -> bool {
        self.filters.iter().all(|f| {
            if let Some(ops) = &f.ops
                && !ops.contains(&ev.op)
            {
                return false;
            }
            let Some((i, ty, cmp, lit)) = &f.predicate else {
                return true;
            };
            let row = match ev.op {
                Op::Delete => ev.before.as_deref(),
                Op::Truncate => return true,
                _ => ev.after.as_deref(),
            };
            match row.and_then(|r| r.get(*i)) {
                None | Some(Datum::Unavailable) => true,
                Some(d) => compare(ty, d, *cmp, lit),
            }
        })
    }

    /// `ev` in the plan's shape (filters not applied: see [`keeps`](Self::keeps)).
    pub fn reshape(&self, ev: &ChangeEvent) -> ChangeEvent {
        if self.same_rows {
            return ev.clone();
        }
        let row = |r: &Option<Vec<Datum>>| {
            r.as_ref().map(|r| {
                self.pick
                    .iter()
                    .zip(&self.masked)
                    .map(|(&i, &m)| match r.get(i) {
                        Some(Datum::Text(_)) if m => Datum::Text(MASK.to_string()),
                        Some(d) => d.clone(),
                        None => Datum::Null,
                    })
                    .collect()
            })
        };
        ChangeEvent {
            op: ev.op,
            before: row(&ev.before),
            after: row(&ev.after),
            source: ev.source.clone(),
            ts_ms: ev.ts_ms,
            transaction: ev.transaction.clone(),
        }
    }
}

fn number(d: &Datum) -> Option<f64> {
    Some(match d {
        Datum::Int(v) => f64::from(*v),
        Datum::Long(v) => *v as f64,
        Datum::Float(v) => f64::from(*v),
        Datum::Double(v) => *v,
        _ => return None,
    })
}

fn compare(ty: &ColumnType, d: &Datum, cmp: Cmp, lit: &Literal) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match lit {
        Literal::Null => {
            let is_null = matches!(d, Datum::Null);
            return match cmp {
                Cmp::Eq => is_null,
                _ => !is_null,
            };
        }
        _ if matches!(d, Datum::Null) => return false, // SQL: NULL compares unknown
        Literal::Number(n) => match number(d) {
            Some(v) => v.partial_cmp(n),
            None => crate::render::text(ty, d)
                .and_then(|t| t.parse::<f64>().ok())
                .and_then(|v| v.partial_cmp(n)),
        },
        Literal::Text(s) => crate::render::text(ty, d).map(|t| t.as_str().cmp(s.as_str())),
    };
    let Some(ord) = ord else { return false };
    match cmp {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, Position, SnapshotFlag, SourceInfo};
    use std::sync::Arc;

    fn col(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            db_type: format!("{ty:?}").to_lowercase(),
            ty,
            nullable: true,
            may_be_unavailable: false,
        }
    }

    fn table() -> TableSchema {
        TableSchema {
            database: "shop".into(),
            schema: "public".into(),
            table: "users".into(),
            columns: vec![
                col("id", ColumnType::Long),
                col("email", ColumnType::Text),
                col("age", ColumnType::Int),
                col("note", ColumnType::Text),
            ],
            key: vec![0],
        }
    }

    fn event(op: Op, row: Vec<Datum>) -> ChangeEvent {
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            Op::Truncate => (None, None),
            _ => (None, Some(row)),
        };
        ChangeEvent {
            op,
            before,
            after,
            source: Arc::new(SourceInfo {
                connector: "postgresql".into(),
                version: "0".into(),
                name: "src".into(),
                ts_ms: 0,
                snapshot: SnapshotFlag::False,
                db: "shop".into(),
                schema: Some("public".into()),
                table: "users".into(),
                position: Position::Postgres {
                    lsn: 0,
                    tx_id: None,
                },
            }),
            ts_ms: 0,
            transaction: None,
        }
    }

    fn row(id: i64, email: &str, age: i32) -> Vec<Datum> {
        vec![
            Datum::Long(id),
            Datum::Text(email.into()),
            Datum::Int(age),
            Datum::Null,
        ]
    }

    fn chain(steps: Vec<Step>) -> Transforms {
        Transforms(
            steps
                .into_iter()
                .enumerate()
                .map(|(i, step)| Transform {
                    name: format!("t{i}"),
                    topics: vec!["src.*".into()],
                    step,
                })
                .collect(),
        )
    }

    #[test]
    fn predicates_parse_and_refuse_with_the_reason() {
        let p = Predicate::parse("age >= 18").expect("valid");
        assert_eq!((p.column.as_str(), p.cmp), ("age", Cmp::Ge));
        assert_eq!(p.value, Literal::Number(18.0));
        let p = Predicate::parse("email != 'o''brien@x'").expect("valid");
        assert_eq!(p.value, Literal::Text("o'brien@x".into()));
        assert_eq!(p.cmp, Cmp::Ne);
        assert_eq!(
            Predicate::parse("note = NULL").expect("valid").value,
            Literal::Null
        );
        assert!(
            Predicate::parse("age < null")
                .expect_err("must fail")
                .to_string()
                .contains("null")
        );
        assert!(
            Predicate::parse("age")
                .expect_err("must fail")
                .to_string()
                .contains("OP")
        );
        assert!(
            Predicate::parse("age = ten")
                .expect_err("must fail")
                .to_string()
                .contains("number")
        );
        assert!(
            Predicate::parse(" = 3")
                .expect_err("must fail")
                .to_string()
                .contains("column")
        );
    }

    #[test]
    fn filters_keep_by_op_and_predicate() {
        let t = chain(vec![Step::Filter {
            ops: Some(vec![Op::Create, Op::Update, Op::Read, Op::Truncate]),
            predicate: Some(Predicate::parse("age >= 18").expect("valid")),
        }]);
        let plan = t.plan("src.public.users", &table()).expect("valid");
        assert!(plan.keeps(&event(Op::Create, row(1, "a", 30))));
        assert!(!plan.keeps(&event(Op::Create, row(2, "b", 12))));
        assert!(
            !plan.keeps(&event(Op::Delete, row(1, "a", 30))),
            "op d is not kept"
        );
        assert!(
            plan.keeps(&event(Op::Truncate, vec![])),
            "truncates pass predicates"
        );
        let mut unseen = row(3, "c", 0);
        unseen[2] = Datum::Unavailable;
        assert!(
            plan.keeps(&event(Op::Update, unseen)),
            "an unseen value keeps the event"
        );
        let mut null_age = row(4, "d", 0);
        null_age[2] = Datum::Null;
        assert!(
            !plan.keeps(&event(Op::Update, null_age)),
            "NULL >= 18 is not true"
        );
        let text = chain(vec![Step::Filter {
            ops: None,
            predicate: Some(Predicate::parse("email = 'a@x'").expect("valid")),
        }])
        .plan("src.public.users", &table())
        .expect("valid");
        assert!(text.keeps(&event(Op::Delete, row(1, "a@x", 1))));
        assert!(!text.keeps(&event(Op::Delete, row(1, "b@x", 1))));
    }

    #[test]
    fn columns_are_dropped_renamed_and_masked_in_shape_and_rows() {
        let t = chain(vec![
            Step::DropColumns(vec!["age".into(), "missing".into()]),
            Step::RenameColumns(vec![("note".into(), "remark".into())]),
            Step::MaskColumns(vec!["email".into()]),
        ]);
        let plan = t.plan("src.public.users", &table()).expect("valid");
        let names: Vec<&str> = plan.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "remark"]);
        assert_eq!(plan.table.key, vec![0]);
        let out = plan.reshape(&event(Op::Create, row(7, "secret@x", 40)));
        assert_eq!(
            out.after,
            Some(vec![Datum::Long(7), Datum::Text(MASK.into()), Datum::Null])
        );
        assert!(!plan.is_identity("src.public.users", &table()));
    }

    #[test]
    fn key_columns_survive_drops_of_columns_before_them() {
        let mut t = table();
        t.key = vec![2];
        let plan = chain(vec![Step::DropColumns(vec!["email".into()])])
            .plan("src.public.users", &t)
            .expect("valid");
        assert_eq!(plan.table.key, vec![1]);
        assert_eq!(plan.table.columns[1].name, "age");
    }

    #[test]
    fn planning_refuses_what_would_corrupt_data() {
        let err = |steps| {
            chain(steps)
                .plan("src.public.users", &table())
                .expect_err("must fail")
                .to_string()
        };
        assert!(err(vec![Step::DropColumns(vec!["id".into()])]).contains("key"));
        assert!(err(vec![Step::MaskColumns(vec!["id".into()])]).contains("key"));
        let e = err(vec![Step::MaskColumns(vec!["age".into()])]);
        assert!(e.contains("only text columns"), "{e}");
        let e = err(vec![Step::RenameColumns(vec![(
            "note".into(),
            "email".into(),
        )])]);
        assert!(e.contains("already has a column \"email\""), "{e}");
        let e = err(vec![Step::Filter {
            ops: None,
            predicate: Some(Predicate::parse("nope = 1").expect("valid")),
        }]);
        assert!(e.contains("transform t0") && e.contains("public.users") && e.contains("nope"));
    }

    #[test]
    fn routes_follow_each_other_and_only_matching_topics_change() {
        let t = Transforms(vec![
            Transform {
                name: "r1".into(),
                topics: vec!["src.public.users".into()],
                step: Step::Route("people.{table}".into()),
            },
            Transform {
                name: "r2".into(),
                topics: vec!["people.*".into()],
                step: Step::Unwrap,
            },
        ]);
        let plan = t.plan("src.public.users", &table()).expect("valid");
        assert_eq!(plan.topic, "people.users");
        assert!(plan.unwrap);
        let other = t.plan("src.public.orders", &table()).expect("valid");
        assert!(other.is_identity("src.public.orders", &table()));
    }
}
