//! A SQL session: TLS as `sslmode` says, the session settings the value
//! parsers expect, the connection driven on its own task.

use std::time::Duration;

use tokio_postgres::Client;

use crate::config::ConnectConfig;
use crate::tls::{self, MakeRustls, SslMode};

/// Session settings the text parsers rely on (startup `options`).
pub const SESSION_OPTIONS: &str =
    "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c TimeZone=UTC -c extra_float_digits=3";

/// Why a SQL session could not be opened. Names host, port, database
/// and sslmode, never the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TLS could not be set up.
    #[error("TLS: {what}: {source}")]
    Tls {
        /// Where we were connecting.
        what: String,
        /// Cause.
        #[source]
        source: tls::TlsError,
    },
    /// The server refused or could not be reached.
    #[error("{what}: {source}")]
    Connect {
        /// Where we were connecting.
        what: String,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Quotes an identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Opens a SQL session with [`SESSION_OPTIONS`].
pub async fn sql_connect(cfg: &ConnectConfig) -> Result<Client, ConnectError> {
    let mut c = tokio_postgres::Config::new();
    c.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.database)
        .application_name(&cfg.application_name)
        .options(SESSION_OPTIONS)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &cfg.password {
        c.password(p);
    }
    let what = || {
        format!(
            "connecting to {}:{} database {} (sslmode {})",
            cfg.host,
            cfg.port,
            cfg.database,
            cfg.ssl_mode.as_str()
        )
    };
    let connect = |source| ConnectError::Connect {
        what: what(),
        source,
    };
    let tls = tls::client_config(cfg.ssl_mode, cfg.ssl_root_cert.as_deref()).map_err(|source| {
        ConnectError::Tls {
            what: what(),
            source,
        }
    })?;
    let client = match tls {
        None => {
            c.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, conn) = c.connect(tokio_postgres::NoTls).await.map_err(connect)?;
            spawn_connection(conn);
            client
        }
        Some(config) => {
            c.ssl_mode(match cfg.ssl_mode {
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            let (client, conn) = c.connect(MakeRustls::new(config)).await.map_err(connect)?;
            spawn_connection(conn);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<T>(conn: T)
where
    T: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "SQL connection ended");
        }
    });
}
