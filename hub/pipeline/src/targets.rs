//! What a `sinks[i]` section builds: the sink of its kind.

use tributary_core::Sink;

use crate::config::{SinkKind, SinkSection};
use crate::error::SectionError;

impl SinkSection {
    /// The sink this section declares (connections are opened on first
    /// use).
    pub fn build(&self) -> Result<Box<dyn Sink>, SectionError> {
        let name = self.name.clone();
        Ok(match &self.kind {
            SinkKind::Redis(r) => {
                use tributary_sink_redis::{RedisSink, RedisSinkConfig};
                Box::new(RedisSink::new(RedisSinkConfig {
                    name,
                    url: r.url.expose().to_string(),
                    prefix: r.prefix.clone(),
                    key: r.key.clone(),
                    format: r.format,
                    ttl_seconds: r.ttl_seconds,
                    publish: r.publish.clone(),
                })?)
            }
            SinkKind::Postgres(t) => {
                use tributary_sink_postgres::{PgSinkConfig, PostgresSink};
                Box::new(PostgresSink::new(PgSinkConfig {
                    name,
                    connect: t.connect.clone(),
                    map: t.map.clone(),
                    create_tables: t.create_tables,
                }))
            }
            SinkKind::Mysql(t) => {
                use tributary_sink_mysql::{MySqlSink, MySqlSinkConfig};
                Box::new(MySqlSink::new(MySqlSinkConfig {
                    name,
                    url: t.url.expose().to_string(),
                    map: t.map.clone(),
                    create_tables: t.create_tables,
                })?)
            }
            SinkKind::Tantivy(t) => {
                use tributary_sink_tantivy::{TantivySink, TantivySinkConfig};
                Box::new(TantivySink::new(TantivySinkConfig {
                    name,
                    path: t.path.clone(),
                    analyzer: t.analyzer,
                }))
            }
        })
    }
}
