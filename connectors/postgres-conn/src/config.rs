//! Where and as whom to connect.

use crate::tls::SslMode;

/// Where and as whom to connect. The password is never logged or shown.
#[derive(Clone)]
pub struct ConnectConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User (a source's needs the REPLICATION attribute).
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database.
    pub database: String,
    /// Shown in pg_stat_activity and pg_stat_replication.
    pub application_name: String,
    /// Extra `-c name=value` settings for the walsender session.
    pub extra_options: String,
    /// TLS use.
    pub ssl_mode: SslMode,
    /// CA certificate(s), PEM, for `verify-full`.
    pub ssl_root_cert: Option<std::path::PathBuf>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: String::new(),
            application_name: "tributary".into(),
            extra_options: String::new(),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
        }
    }
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .finish()
    }
}

/// Why a `postgres://` URL was refused. Never repeats the URL (it may
/// hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    NotAUrl(String),
    /// Another scheme.
    #[error("scheme {0:?}: expected postgres:// or postgresql://")]
    Scheme(String),
    /// No database in the path.
    #[error("no database in the URL path (postgres://host/DATABASE)")]
    NoDatabase,
    /// An `sslmode` libpq does not know.
    #[error("sslmode {0:?}: expected disable, prefer, require or verify-full")]
    SslMode(String),
    /// A query parameter we do not take.
    #[error("unknown URL parameter {0:?}")]
    Parameter(String),
}

impl ConnectConfig {
    /// Parses `postgres://user:password@host:port/database?sslmode=..&sslrootcert=..&application_name=..`.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let u = url::Url::parse(url).map_err(|e| UrlError::NotAUrl(e.to_string()))?;
        if !matches!(u.scheme(), "postgres" | "postgresql") {
            return Err(UrlError::Scheme(u.scheme().to_string()));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let database = u.path().trim_start_matches('/');
        if database.is_empty() {
            return Err(UrlError::NoDatabase);
        }
        let mut cfg = ConnectConfig {
            host: u.host_str().unwrap_or("localhost").to_string(),
            port: u.port().unwrap_or(5432),
            user: if u.username().is_empty() {
                "postgres".into()
            } else {
                decode(u.username())
            },
            password: u.password().map(decode),
            database: decode(database),
            ..ConnectConfig::default()
        };
        for (k, v) in u.query_pairs() {
            match &*k {
                "sslmode" => {
                    cfg.ssl_mode =
                        SslMode::parse(&v).ok_or_else(|| UrlError::SslMode(v.to_string()))?;
                }
                "sslrootcert" => cfg.ssl_root_cert = Some(v.into_owned().into()),
                "application_name" => cfg.application_name = v.into_owned(),
                other => return Err(UrlError::Parameter(other.to_string())),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = ConnectConfig::from_url(
            "postgres://me:p%40ss@db.example:6543/shop?sslmode=verify-full&sslrootcert=/ca.pem",
        )
        .expect("url");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.database.as_str()
            ),
            ("db.example", 6543, "me", "shop")
        );
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        let err = ConnectConfig::from_url("postgres://me:secret@h/db?sslmode=maybe")
            .expect_err("sslmode")
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(ConnectConfig::from_url("mysql://h/db").is_err());
        assert!(ConnectConfig::from_url("postgres://h/").is_err());
        assert!(!format!("{c:?}").contains("p@ss"));
    }
}
