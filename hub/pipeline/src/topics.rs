//! Which topics of the log hold data a sink applies: not the dead-letter
//! topics sinks write, and not the internal topics sources announce
//! (MySQL's schema history).

use std::collections::HashSet;

use crate::config::{Pipeline, matches};

/// The topics of a pipeline that are never data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataTopics {
    internal: HashSet<String>,
}

impl DataTopics {
    /// The internal topics `p`'s sources announce.
    pub fn of(p: &Pipeline) -> Self {
        let internal = p
            .sources
            .iter()
            .flat_map(|s| s.internal_topics(&p.log))
            .collect();
        Self { internal }
    }

    /// Whether a sink reading `patterns` consumes `topic`.
    pub fn consumed_by(&self, patterns: &[String], topic: &str) -> bool {
        !topic.ends_with(DLQ_SUFFIX)
            && !self.internal.contains(topic)
            && patterns.iter().any(|p| matches(p, topic))
    }
}

/// A sink's dead-letter topic is its name followed by this.
pub const DLQ_SUFFIX: &str = ".dlq";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_leave_out_dead_letters_and_what_sources_announce_as_internal() {
        let yaml = r#"
sources:
  - name: shop
    kind: mysql
    url: mysql://root@127.0.0.1:3306/
    tables: {include: ["shop.*"]}
  - name: pg
    kind: postgres
    url: postgres://postgres@127.0.0.1:5432/db
    tables: {include: ["public.*"]}
sinks:
  - {name: all, kind: redis, topics: ["*"]}
"#;
        let p = crate::config::parse(std::path::Path::new("p.yaml"), yaml, &|_| None)
            .expect("pipeline");
        let data = DataTopics::of(&p);
        let all = ["*".to_string()];
        assert!(data.consumed_by(&all, "shop.shop.orders"));
        assert!(data.consumed_by(&all, "pg.public.items"));
        // MySQL announces its schema history; a topic of the same shape
        // from another source is data.
        assert!(!data.consumed_by(&all, "shop.schema-history"));
        assert!(data.consumed_by(&all, "pg.schema-history"));
        assert!(!data.consumed_by(&all, "all.dlq"));
        assert!(!data.consumed_by(&["shop.*".to_string()], "pg.public.items"));
    }
}
