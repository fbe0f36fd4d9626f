//! The Redis/Valkey sink: renders every command template for every output
//! and sends the whole batch as one pipeline over a `ConnectionManager`
//! (which reconnects by itself after a connection loss).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::config::{CommandKind, CompiledCommand, CompiledIncrement, OnDelete, RedisSinkConfig};
use super::template::{OutputView, write_raw};
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
    commands: Vec<CompiledCommand>,
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
        let commands = config
            .compile(name)
            .map_err(|e| SinkError::Fatal(e.to_string()))?;
        super::config::warn_non_idempotent(name, &commands);
        let client = open_client(ctx, config).map_err(|(_, e)| {
            // The URL carries the password: never quote it as it is.
            let message = format!("invalid url `{}`: {e}", config.url);
            SinkError::Fatal(crate::secrets::redact(&message).into_owned())
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
        for c in &self.commands {
            match self.render_one(c, &view) {
                Ok(Some(cmd)) => cmds.push((c.index, cmd)),
                Ok(None) => {}
                Err(reason) => {
                    cmds.truncate(start);
                    return Err(format!("{}: {reason}", c.label()));
                }
            }
        }
        Ok(())
    }

    fn render_one(
        &self,
        c: &CompiledCommand,
        view: &OutputView<'_>,
    ) -> Result<Option<redis::Cmd>, String> {
        let output = view.output;
        if c.kind == CommandKind::Generic {
            return render_generic(c, view);
        }
        let key = c
            .key
            .as_ref()
            .ok_or("no key template")?
            .render(view)
            .map_err(|e| format!("key {e}"))?;
        if output.op == Op::Delete {
            match c.on_delete {
                OnDelete::Skip => return Ok(None),
                OnDelete::Del => {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(key);
                    return Ok(Some(cmd));
                }
                OnDelete::Apply => {}
            }
        }
        let mut cmd = redis::cmd(c.kind.name());
        cmd.arg(&key);
        match c.kind {
            CommandKind::Set => {
                if let Some(t) = &c.value {
                    cmd.arg(t.render(view).map_err(|e| format!("value {e}"))?);
                }
                if let Some(ttl) = output.ttl_seconds.map(u64::from).or(c.ttl_seconds) {
                    cmd.arg("EX").arg(ttl.max(1));
                }
            }
            CommandKind::HSet => self.push_fields(c, view, &mut cmd)?,
            CommandKind::XAdd => {
                if let Some((exact, n)) = c.maxlen {
                    cmd.arg("MAXLEN");
                    if !exact {
                        cmd.arg("~");
                    }
                    cmd.arg(n);
                }
                if let Some(id) = &c.id {
                    cmd.arg(id.render(view).map_err(|e| format!("id {e}"))?);
                }
                self.push_fields(c, view, &mut cmd)?;
            }
            CommandKind::SAdd | CommandKind::PfAdd => {
                for (i, m) in c.members.iter().enumerate() {
                    cmd.arg(m.render(view).map_err(|e| format!("members[{i}] {e}"))?);
                }
            }
            CommandKind::ZIncrBy => {
                cmd.arg(render_increment(c, view)?);
                for m in &c.members {
                    cmd.arg(m.render(view).map_err(|e| format!("member {e}"))?);
                }
            }
            CommandKind::IncrBy | CommandKind::IncrByFloat => {
                cmd.arg(render_increment(c, view)?);
            }
            CommandKind::Expire => {
                let ttl = output
                    .ttl_seconds
                    .map(u64::from)
                    .or(c.ttl_seconds)
                    .ok_or("no expiry: the output has no ttl_seconds and none is configured")?;
                cmd.arg(ttl.max(1));
            }
            CommandKind::Del | CommandKind::Generic => {}
        }
        Ok(Some(cmd))
    }

    /// HSET/XADD field-value pairs: the mapping, or every top-level field.
    fn push_fields(
        &self,
        c: &CompiledCommand,
        view: &OutputView<'_>,
        cmd: &mut redis::Cmd,
    ) -> Result<(), String> {
        match &c.fields {
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
    c: &CompiledCommand,
    view: &OutputView<'_>,
) -> Result<Option<redis::Cmd>, String> {
    if view.output.op == Op::Delete && c.on_delete == OnDelete::Skip {
        return Ok(None);
    }
    let mut cmd = redis::cmd(&c.name);
    for (i, t) in c.args.iter().enumerate() {
        cmd.arg(t.render(view).map_err(|e| format!("args[{i}] {e}"))?);
    }
    Ok(Some(cmd))
}

fn render_increment(c: &CompiledCommand, view: &OutputView<'_>) -> Result<Vec<u8>, String> {
    match &c.increment {
        None => Ok(b"1".to_vec()),
        Some(CompiledIncrement::Const(s)) => Ok(s.as_bytes().to_vec()),
        Some(CompiledIncrement::Template(t)) => {
            t.render(view).map_err(|e| format!("increment {e}"))
        }
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

/// Whether an error is worth retrying, and the message (without the sink's
/// name: the caller adds it once).
fn classify(what: &str, e: &redis::RedisError) -> SinkError {
    let msg = format!("{what}: {e}");
    if is_transient(e) {
        SinkError::Transient(msg)
    } else {
        SinkError::Fatal(msg)
    }
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
                .iter()
                .find(|c| c.index == ci)
                .map_or_else(|| format!("commands[{ci}]"), CompiledCommand::label);
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
