//! Client mode: the commands that read or write a data directory
//! (`topics`, `consume`, `produce`, `offsets list`) talk to a running hub
//! over gRPC instead when one holds the directory, or when `--hub` is
//! given; `status` always does. What they print is the same either way.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tributary_api::v1::hub_client::HubClient;

use crate::datadir::DataDir;

/// Where the hub is when neither `--hub` nor the data directory says.
pub const DEFAULT_HUB: &str = "127.0.0.1:50051";

/// How a command reaches a running hub.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Talk to the hub at this gRPC address instead of opening the data
    /// directory (default when a hub holds the directory: the address it
    /// published there; otherwise 127.0.0.1:50051). Setting TRIBUTARY_HUB
    /// counts as giving it.
    #[arg(long, env = "TRIBUTARY_HUB")]
    pub hub: Option<String>,
    /// The hub's bearer token (prefer the environment: a command line is
    /// visible to `ps`).
    #[arg(long = "token", env = "TRIBUTARY_TOKEN", hide_env_values = true)]
    pub token: Option<crate::http::Token>,
}

/// Adds the token to every call.
#[derive(Debug, Clone)]
pub struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut()
                .insert(tributary_api::AUTHORIZATION, v.clone());
        }
        Ok(req)
    }
}

/// A connected client.
pub type Client = HubClient<InterceptedService<Channel, Auth>>;

/// A hub's client with the address it was reached at (for messages).
#[derive(Debug, Clone)]
pub struct Hub {
    /// The client.
    pub client: Client,
    /// `host:port` as given.
    pub addr: String,
}

/// Either the data directory, opened by this process, or a hub.
#[derive(Debug)]
pub enum Access {
    /// No hub runs there: the command opens the directory itself.
    Local(DataDir),
    /// A hub: over gRPC (the tokio runtime the calls run on).
    Remote(Box<Hub>, Box<tokio::runtime::Runtime>),
}

impl HubArgs {
    /// The rule: `--hub` given, or a hub holds `data_dir` (at the address
    /// it published): gRPC; otherwise the directory itself.
    pub fn access(&self, data_dir: &Path) -> anyhow::Result<Access> {
        let rt = crate::runtime()?;
        let (addr, dd) = match &self.hub {
            Some(a) => (a.clone(), None),
            None => {
                let dd = DataDir::existing(data_dir)?;
                match dd.running_hub()? {
                    Some(a) => (a, Some(dd)),
                    None => return Ok(Access::Local(dd)),
                }
            }
        };
        match (rt.block_on(self.connect_to(&addr)), dd) {
            (Ok(hub), _) => Ok(Access::Remote(Box::new(hub), Box::new(rt))),
            // The address a crashed hub left behind, while another
            // command holds the directory for a moment: the directory
            // itself (which waits for that command, or says who holds it).
            (Err(e), Some(dd)) => {
                tracing::debug!(error = %e, "the published hub does not answer");
                Ok(Access::Local(dd))
            }
            (Err(e), None) => Err(e),
        }
    }

    /// A client of the hub at `--hub` (or the default address).
    pub async fn connect(&self) -> anyhow::Result<Hub> {
        let addr = self.hub.clone().unwrap_or_else(|| DEFAULT_HUB.to_string());
        self.connect_to(&addr).await
    }

    async fn connect_to(&self, addr: &str) -> anyhow::Result<Hub> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .with_context(|| format!("--hub {addr:?} is not an address (host:port)"))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.map_err(|e| {
            anyhow::anyhow!(
                "no hub answers at {addr} ({e}): start `tributary run` or `tributary serve`, \
                 or give --hub"
            )
        })?;
        let auth = match &self.token {
            Some(t) => Some(
                tributary_api::bearer(t.expose())
                    .context("the token holds characters gRPC metadata cannot carry")?,
            ),
            None => None,
        };
        Ok(Hub {
            client: HubClient::with_interceptor(channel, Auth(auth)),
            addr: addr.to_string(),
        })
    }
}

/// A failed call as the command's error: the hub's message, which names
/// what was wrong (and the address when the hub is gone or wants a
/// token).
pub fn failed(hub: &Hub, status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unavailable => anyhow::anyhow!(
            "the hub at {} does not answer: {}",
            hub.addr,
            status.message()
        ),
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "the hub at {} refused the call: {} (set TRIBUTARY_TOKEN)",
            hub.addr,
            status.message()
        ),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}
