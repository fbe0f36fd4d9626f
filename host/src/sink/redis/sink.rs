//! The Redis/Valkey sink: renders every command template for every output
//! and sends the whole batch as one pipeline over a `ConnectionManager`
//! (which reconnects by itself after a connection loss).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::config::{Increment, OnDelete, RedisCommand, RedisSinkConfig};
use super::template::Template;
use super::template::{OutputView, write_raw};
use crate::connector_error::ConnectorError;
use crate::event::{Op, Output};
use crate::sink::{BuildSink, Rejection, Sink, SinkContext, SinkError};

/// The client for the configured URL, with the `tls` certificates when
/// set (a `rediss://` URL without them trusts the system's CAs). Nothing
/// here touches the network, so `weir validate` runs it too; an error
/// names the setting at fault (`url` or `tls`).
pub(super) fn open_client(
    ctx: &SinkContext,
    config: &RedisSinkConfig,
) -> Result<redis::Client, (&'static str, String)> {
    crate::tls::install_crypto_provider();
    let Some(tls) = &config.tls else {
        return redis::Client::open(config.url.as_str()).map_err(|e| ("url", e.to_string()));
    };
    if !config.url.starts_with("rediss://") {
        return Err((
            "tls",
            "`tls` is set, so `url` must start with rediss://".to_owned(),
        ));
    }
    let pem = |setting: &str, path: &std::path::Path| {
        crate::tls::read_pem(setting, &ctx.resolve(path)).map_err(|e| ("tls", e))
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|p| pem("tls.ca_file", p))
        .transpose()?;
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: pem("tls.cert_file", cert)?,
            client_key: pem("tls.key_file", key)?,
        }),
        (None, None) => None,
        _ => {
            return Err((
                "tls",
                "`tls.cert_file` and `tls.key_file` go together".to_owned(),
            ));
        }
    };
    redis::Client::build_with_tls(
        config.url.as_str(),
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| ("url", e.to_string()))
}

/// A connected Redis sink.
pub struct RedisSink {
    commands: Vec<RedisCommand>,
    conn: ConnectionManager,
}

#[async_trait]
impl BuildSink for RedisSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        let sink = RedisSink::connect(ctx, self).await?;
        Ok(Arc::new(sink))
    }
}

impl RedisSink {
    /// Validate the config and connect (an unreachable server is a
    /// transient error, a bad URL or template a fatal one).
    pub async fn connect(
        ctx: &SinkContext,
        config: &RedisSinkConfig,
    ) -> Result<RedisSink, SinkError> {
        let name = ctx.name.as_str();
        // The commands were checked as the config was read.
        let commands = config.commands.clone();
        super::config::warn_non_idempotent(name, &commands);
        let client = open_client(ctx, config).map_err(|(_, e)| {
            // The URL carries the password: never quote it as it is.
            let message = format!("invalid url `{}`: {e}", config.url);
            RedisSinkError::InvalidUrl(crate::secrets::redact(&message).into_owned())
        })?;
        // Few reconnect attempts per request: while the server is away a
        // write fails quickly as transient, and the pipeline's own backoff
        // paces the retries.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(config.connection_timeout_ms)));
        let conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| classify("connect", &e))?;
        Ok(RedisSink { commands, conn })
    }

    /// Render all commands for one output, or say why it cannot be written.
    fn render(&self, output: &Output, cmds: &mut Vec<(usize, redis::Cmd)>) -> Result<(), String> {
        let view = OutputView::new(output);
        let start = cmds.len();
        for (index, c) in self.commands.iter().enumerate() {
            match self.render_one(c, &view) {
                Ok(Some(cmd)) => cmds.push((index, cmd)),
                Ok(None) => {}
                Err(reason) => {
                    cmds.truncate(start);
                    return Err(format!("{}: {reason}", c.label(index)));
                }
            }
        }
        Ok(())
    }

    fn render_one(
        &self,
        c: &RedisCommand,
        view: &OutputView<'_>,
    ) -> Result<Option<redis::Cmd>, String> {
        let output = view.output;
        let key = match c {
            RedisCommand::Generic { name, args, .. } => {
                return render_generic(name, args, c.on_delete(), view);
            }
            RedisCommand::Set { key, .. }
            | RedisCommand::HSet { key, .. }
            | RedisCommand::XAdd { key, .. }
            | RedisCommand::AddMembers { key, .. }
            | RedisCommand::ZIncrBy { key, .. }
            | RedisCommand::Incr { key, .. }
            | RedisCommand::Expire { key, .. }
            | RedisCommand::Del { key, .. } => key,
        };
        let key = key.render(view).map_err(|e| format!("key {e}"))?;
        if output.op == Op::Delete {
            match c.on_delete() {
                OnDelete::Skip => return Ok(None),
                OnDelete::Del => {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(key);
                    return Ok(Some(cmd));
                }
                OnDelete::Apply => {}
            }
        }
        let mut cmd = redis::cmd(c.name());
        cmd.arg(&key);
        match c {
            RedisCommand::Set {
                value, ttl_seconds, ..
            } => {
                cmd.arg(value.render(view).map_err(|e| format!("value {e}"))?);
                if let Some(ttl) = output.ttl_seconds.map(u64::from).or(*ttl_seconds) {
                    cmd.arg("EX").arg(ttl.max(1));
                }
            }
            RedisCommand::HSet { fields, .. } => {
                self.push_fields(fields.as_deref(), view, &mut cmd)?
            }
            RedisCommand::XAdd {
                fields, maxlen, id, ..
            } => {
                if let Some((exact, n)) = *maxlen {
                    cmd.arg("MAXLEN");
                    if !exact {
                        cmd.arg("~");
                    }
                    cmd.arg(n);
                }
                cmd.arg(id.render(view).map_err(|e| format!("id {e}"))?);
                self.push_fields(fields.as_deref(), view, &mut cmd)?;
            }
            RedisCommand::AddMembers { members, .. } => {
                for (i, m) in members.iter().enumerate() {
                    cmd.arg(m.render(view).map_err(|e| format!("members[{i}] {e}"))?);
                }
            }
            RedisCommand::ZIncrBy {
                increment, member, ..
            } => {
                cmd.arg(render_increment(increment, view)?);
                cmd.arg(member.render(view).map_err(|e| format!("member {e}"))?);
            }
            RedisCommand::Incr { increment, .. } => {
                cmd.arg(render_increment(increment, view)?);
            }
            RedisCommand::Expire { ttl_seconds, .. } => {
                let ttl = output
                    .ttl_seconds
                    .map(u64::from)
                    .or(*ttl_seconds)
                    .ok_or("no expiry: the output has no ttl_seconds and none is configured")?;
                cmd.arg(ttl.max(1));
            }
            RedisCommand::Del { .. } | RedisCommand::Generic { .. } => {}
        }
        Ok(Some(cmd))
    }

    /// HSET/XADD field-value pairs: the mapping, or every top-level field.
    fn push_fields(
        &self,
        fields: Option<&[(String, Template)]>,
        view: &OutputView<'_>,
        cmd: &mut redis::Cmd,
    ) -> Result<(), String> {
        match fields {
            Some(map) => {
                for (field, t) in map {
                    cmd.arg(field.as_str())
                        .arg(t.render(view).map_err(|e| format!("fields.{field} {e}"))?);
                }
            }
            None => {
                let fields = view.fields().map_err(|why| format!("value is {why}"))?;
                if !view.is_object() {
                    return Err(
                        "value is not a JSON object, so it has no fields to write (configure `fields`)"
                            .to_owned(),
                    );
                }
                if fields.is_empty() {
                    return Err("value is an empty JSON object: no fields to write".to_owned());
                }
                let mut buf = Vec::new();
                for (field, v) in fields {
                    buf.clear();
                    write_raw(v, &mut buf);
                    cmd.arg(field.as_ref()).arg(buf.as_slice());
                }
            }
        }
        Ok(())
    }
}

/// A generic command: its name and every argument rendered, in order.
fn render_generic(
    name: &str,
    args: &[Template],
    on_delete: OnDelete,
    view: &OutputView<'_>,
) -> Result<Option<redis::Cmd>, String> {
    if view.output.op == Op::Delete && on_delete == OnDelete::Skip {
        return Ok(None);
    }
    let mut cmd = redis::cmd(name);
    for (i, t) in args.iter().enumerate() {
        cmd.arg(t.render(view).map_err(|e| format!("args[{i}] {e}"))?);
    }
    Ok(Some(cmd))
}

fn render_increment(increment: &Increment, view: &OutputView<'_>) -> Result<Vec<u8>, String> {
    match increment {
        Increment::Const(s) => Ok(s.as_bytes().to_vec()),
        Increment::Template(t) => t.render(view).map_err(|e| format!("increment {e}")),
    }
}

/// A server error as the server wrote it (`WRONGTYPE Operation against ...`).
fn server_message(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    }
}

/// Why the Redis sink failed (without the sink's name: the caller adds it
/// once).
#[derive(Debug, thiserror::Error)]
pub enum RedisSinkError {
    /// The URL or `tls` files make no client (the URL's password hidden).
    #[error("{0}")]
    InvalidUrl(String),
    /// A call to the server failed.
    #[error("{what}: {source}")]
    Call {
        /// `connect`, `pipeline` or `PING`.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
}

impl ConnectorError for RedisSinkError {
    fn is_transient(&self) -> bool {
        match self {
            RedisSinkError::InvalidUrl(_) => false,
            RedisSinkError::Call { source, .. } => is_transient(source),
        }
    }
}

/// The error of call `what`, as the pipeline sorts it.
fn classify(what: &'static str, e: &redis::RedisError) -> SinkError {
    RedisSinkError::Call {
        what,
        source: e.clone(),
    }
    .into()
}

fn is_transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ) | ErrorKind::Parse
    )
}

#[async_trait]
impl Sink for RedisSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut cmds: Vec<(usize, redis::Cmd)> =
            Vec::with_capacity(outputs.len() * self.commands.len());
        // For each pipelined command: (output index, command index).
        let mut owners: Vec<(usize, usize)> =
            Vec::with_capacity(outputs.len() * self.commands.len());
        for (i, output) in outputs.iter().enumerate() {
            let before = cmds.len();
            match self.render(output, &mut cmds) {
                Ok(()) => owners.extend(cmds[before..].iter().map(|(ci, _)| (i, *ci))),
                Err(reason) => rejections.push(Rejection { index: i, reason }),
            }
        }
        if cmds.is_empty() {
            return Ok(rejections);
        }
        let mut pipe = redis::pipe();
        for (_, cmd) in cmds {
            pipe.add_command(cmd);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe
            .ignore_errors()
            .query_async(&mut conn)
            .await
            .map_err(|e| classify("pipeline", &e))?;
        let mut last_rejected = None;
        for (reply, &(i, ci)) in replies.iter().zip(&owners) {
            let Err(e) = reply else { continue };
            if is_transient(e) {
                return Err(classify("pipeline", e));
            }
            if last_rejected == Some(i) || rejections.iter().any(|r| r.index == i) {
                continue;
            }
            last_rejected = Some(i);
            let label = self
                .commands
                .get(ci)
                .map_or_else(|| format!("commands[{ci}]"), |c| c.label(ci));
            rejections.push(Rejection {
                index: i,
                reason: format!("{label}: server said: {}", server_message(e)),
            });
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| classify("PING", &e))
    }
}
