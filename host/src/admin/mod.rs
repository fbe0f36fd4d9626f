//! The admin API (HTTP): probes, metrics, plugins and reloads.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /health/live` | 200 while the process serves HTTP |
//! | `GET /health/ready` | 200 when every pipeline runs, its source is connected and its sinks are healthy; 503 otherwise, with the details |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /plugins` | every plugin: version hash, loaded at, pipelines, counters, last reload error |
//! | `GET /plugins/{name}` | one plugin |
//! | `POST /plugins/{name}/reload` | reload (optional JSON body `{"path": "..."}` switches the file) |
//!
//! ```toml
//! [host.admin]
//! listen = "127.0.0.1:9464"          # the default
//! token = "${WEIR_ADMIN_TOKEN}"      # required for reloads
//! reload_dirs = ["/srv/weir/plugins"] # where a reload may take a new file from
//! max_plugin_bytes = 67108864        # the default (64 MiB)
//! ```
//!
//! Bound to a loopback address by default. Bound to any other address it
//! refuses to start without a token. Mutating endpoints (`POST`) require
//! `Authorization: Bearer <token>` (401 otherwise) wherever the server
//! listens: another local user or a web page in a local browser can reach
//! loopback too. Without a token they are refused (403) unless
//! `allow_unauthenticated_loopback = true` is set on a loopback address. A
//! `POST` carrying a browser form content type (or any type but
//! `application/json`) is refused (415), so a web page cannot forge one.
//! Read-only endpoints stay open, so probes and scrapers need no secret.
//!
//! A reload with a `path` takes the new file only from the plugin's
//! configured file or the directory holding it, or from a `reload_dirs`
//! directory, and only a regular file of at most `max_plugin_bytes` (see
//! [`crate::plugin::ReloadRules`]).

mod health;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use health::{
    CHECK_TIMEOUT, CheckResult, PipelineHealth, PipelineReadiness, Readiness, RunState, readiness,
};

use crate::plugin::{PluginRegistry, ReloadRules};

/// `[host.admin]`: the admin HTTP server.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin API. Default `true`.
    pub enabled: bool,
    /// Address and port to listen on. Default `127.0.0.1:9464`; port 0
    /// picks a free one. A non-loopback address requires `token`.
    pub listen: SocketAddr,
    /// Bearer token that mutating endpoints (`POST /plugins/{name}/reload`)
    /// require; usually `"${WEIR_ADMIN_TOKEN}"`. Required when `listen` is
    /// not a loopback address. An empty string counts as unset.
    pub token: Option<String>,
    /// Let mutating endpoints run without a token when `listen` is a
    /// loopback address. Default `false`: without a token, reloads through
    /// the API are refused.
    pub allow_unauthenticated_loopback: bool,
    /// Directories (relative ones against the config file's directory) a
    /// reload through the API may take a plugin's new file from, besides the
    /// directory of the plugin's configured file. Default: none.
    pub reload_dirs: Vec<PathBuf>,
    /// Largest plugin file a reload reads, in bytes. Default 64 MiB.
    pub max_plugin_bytes: u64,
}

pub use crate::plugin::DEFAULT_MAX_PLUGIN_BYTES;

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token: None,
            allow_unauthenticated_loopback: false,
            reload_dirs: Vec::new(),
            max_plugin_bytes: DEFAULT_MAX_PLUGIN_BYTES,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "allow_unauthenticated_loopback",
                &self.allow_unauthenticated_loopback,
            )
            .field("reload_dirs", &self.reload_dirs)
            .field("max_plugin_bytes", &self.max_plugin_bytes)
            .finish()
    }
}

impl AdminConfig {
    /// The token, if set and not empty.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }

    /// What a reload through the API may read.
    pub fn reload_rules(&self) -> ReloadRules {
        ReloadRules {
            dirs: self.reload_dirs.clone(),
            max_bytes: self.max_plugin_bytes,
        }
    }
}

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A non-loopback address without a token.
    #[error(
        "admin API: refusing to listen on {addr} (not a loopback address) without a token; \
         set [host.admin] token (e.g. \"${{WEIR_ADMIN_TOKEN}}\") or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("admin API: cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
}

/// What the handlers reach.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The plugins.
    pub registry: Arc<PluginRegistry>,
    /// What readiness checks.
    pub pipelines: Vec<PipelineHealth>,
}

/// A bound, not yet serving, admin server.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
    token: Option<String>,
    open_loopback: bool,
    rules: ReloadRules,
    state: AdminState,
}

impl AdminServer {
    /// Check the auth rules and bind. Installs the Prometheus recorder
    /// (once per process).
    pub async fn bind(config: &AdminConfig, state: AdminState) -> Result<AdminServer, AdminError> {
        let requested = config.listen;
        if !requested.ip().is_loopback() && config.token().is_none() {
            return Err(AdminError::TokenRequired { addr: requested });
        }
        let listener = TcpListener::bind(requested)
            .await
            .map_err(|error| AdminError::Bind {
                addr: requested,
                error,
            })?;
        let addr = listener.local_addr().map_err(|error| AdminError::Bind {
            addr: requested,
            error,
        })?;
        // Metrics recorded before this point (plugin loads) are lost only
        // if nothing installed a recorder earlier; install it here at the
        // latest.
        let _ = crate::metrics::prometheus();
        Ok(AdminServer {
            listener,
            addr,
            token: config.token().map(str::to_owned),
            // Only ever on a loopback address, whatever the flag says.
            open_loopback: config.allow_unauthenticated_loopback && addr.ip().is_loopback(),
            rules: config.reload_rules(),
            state,
        })
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let AdminServer {
            listener,
            addr,
            token,
            open_loopback,
            rules,
            state,
        } = self;
        let upkeep = crate::metrics::prometheus().map(|handle| {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => handle.run_upkeep(),
                    }
                }
            })
        });
        let app = routes::router(routes::Shared {
            registry: state.registry,
            pipelines: Arc::new(state.pipelines),
            token: token.map(Arc::from),
            open_loopback,
            rules: Arc::new(rules),
            metrics: crate::metrics::prometheus(),
        });
        tracing::info!(%addr, "admin API listening");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Some(task) = upkeep {
            task.abort();
        }
        served
    }
}
