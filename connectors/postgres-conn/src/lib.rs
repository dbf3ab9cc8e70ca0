//! `tributary-postgres-conn`: connecting to PostgreSQL, for the source
//! (SQL and replication connections) and the sink alike.
//!
//! - [`config`]: where and as whom ([`ConnectConfig`]), from a
//!   `postgres://` URL or fields; the password never shown;
//! - [`tls`]: `sslmode` disable/prefer/require/verify-full with rustls;
//! - [`connect`]: a SQL session with the settings Tributary's value
//!   parsers rely on ([`SESSION_OPTIONS`]).

pub mod config;
pub mod connect;
pub mod tls;

pub use config::{ConnectConfig, UrlError};
pub use connect::{ConnectError, SESSION_OPTIONS, quote_ident, sql_connect};
pub use tls::SslMode;
