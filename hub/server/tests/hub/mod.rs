//! The hub as users run it: the `tributary` binary, its pipelines against
//! the local services, its APIs and the Docker files.

mod cli;
mod data_commands;
mod docker;
mod exact_values;
mod grpc_api;
mod http_api;
mod mariadb_pipeline;
mod mysql_pipeline;
mod offsets_reset;
mod postgres_pipeline;
mod redis_pipeline;
mod run;
mod tantivy_pipeline;
mod transforms;
