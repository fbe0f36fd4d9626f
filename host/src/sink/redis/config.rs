//! The `[sinks.NAME]` settings of a Redis/Valkey sink. Each command table
//! is checked as it is read and becomes a [`RedisCommand`], one variant
//! per command with exactly the options that command takes, so the sink
//! never sees an option that does not apply.
//!
//! ```toml
//! [sinks.cache]
//! type = "redis"
//! url = "redis://127.0.0.1:16379/0"
//!
//! [[sinks.cache.commands]]
//! cmd = "SET"
//! key = "session:{value.session_id}"
//! value = "{value}"
//! ttl_seconds = 1800
//!
//! [[sinks.cache.commands]]
//! cmd = "SADD"
//! key = "user:{value.user_id}:sessions"
//! members = ["{value.session_id}"]
//!
//! # Any other command (a Redis Stack / Valkey module's): `args` templates.
//! [[sinks.cache.commands]]
//! cmd = "TS.ADD"
//! args = ["pageviews:{value.url}", "{value.ts}", "1"]
//! ```

use std::collections::BTreeMap;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::template::Template;
use crate::sink::SinkContext;

/// A Redis or Valkey sink: one or more command templates run for every
/// output, pipelined per batch.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Server URL: `redis://[user:password@]host:port/db`, `rediss://` for
    /// TLS. The database number and AUTH credentials come from the URL.
    pub url: String,
    /// The commands run for every output, in this order.
    pub commands: Vec<RedisCommand>,
    /// How long to wait for a reply to a pipeline before the write is
    /// reported as a transient failure, in milliseconds.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// How long to wait for a (re)connection, in milliseconds.
    #[serde(default = "default_connection_timeout_ms")]
    pub connection_timeout_ms: u64,
    /// Certificates for a `rediss://` URL. Without it a `rediss://`
    /// connection verifies the server against the system's trusted CAs.
    pub tls: Option<RedisTlsConfig>,
}

/// `tls = { ... }` of a Redis sink (PEM files, relative to the config).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTlsConfig {
    /// The CA certificate(s) the server's certificate must chain to,
    /// instead of the system's trusted CAs.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate, for servers that require one
    /// (`tls-auth-clients yes`); goes with `key_file`.
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<std::path::PathBuf>,
}

fn default_response_timeout_ms() -> u64 {
    10_000
}

fn default_connection_timeout_ms() -> u64 {
    2_000
}

/// One `[[sinks.NAME.commands]]` table as written. Which keys apply
/// depends on `cmd`; a key that does not apply to the command is an error.
/// It exists only while the table is read: [`RedisCommand`] is what the
/// sink keeps.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    /// The command: `SET`, `HSET`, `XADD`, `SADD`, `ZINCRBY`, `PFADD`,
    /// `INCRBY`, `INCRBYFLOAT`, `EXPIRE` or `DEL` (case-insensitive), or,
    /// with `args`, any command (`TS.ADD`, `JSON.SET`, `BF.ADD`, ...).
    cmd: String,
    /// Template of the key, e.g. `session:{value.session_id}` (built-in
    /// commands; a generic command has its key among its `args`).
    key: Option<Template>,
    /// Generic command: templates of every argument after the command
    /// name, in order, e.g. `["pageviews:{value.url}", "{value.ts}", "1"]`.
    /// Setting it sends `cmd` as it is written, whatever it is, and none of
    /// the built-in options apply.
    args: Option<Vec<Template>>,
    /// Generic command: whether running it twice with the same arguments
    /// leaves the same state (`JSON.SET`, `BF.ADD`: yes; `TS.ADD` with the
    /// default duplicate policy, `INCR`: no). Default false: the sink warns
    /// at start that a replayed output applies it again.
    idempotent: Option<bool>,
    /// `SET`: template of the value written. Default `{value}` (the whole
    /// JSON value).
    value: Option<Template>,
    /// `SET`: expiry in seconds (`SET ... EX`); an output's own
    /// `ttl_seconds` takes precedence. `EXPIRE`: the expiry set (an output's
    /// own `ttl_seconds` takes precedence; one of the two is required).
    ttl_seconds: Option<u64>,
    /// `HSET`, `XADD`: field name → value template. Default: every
    /// top-level field of the JSON value (strings bare, the rest as JSON).
    fields: Option<BTreeMap<String, Template>>,
    /// `SADD`, `PFADD`: templates of the members added.
    members: Option<Vec<Template>>,
    /// `ZINCRBY`: template of the member whose score is incremented.
    member: Option<Template>,
    /// `ZINCRBY`, `INCRBY`, `INCRBYFLOAT`: the increment, a number or a
    /// template (`"{value.amount}"`). Default 1.
    increment: Option<Increment>,
    /// `XADD`: cap the stream at about this many entries (`MAXLEN ~ N`).
    maxlen: Option<u64>,
    /// `XADD`: with `maxlen`, trim exactly (`MAXLEN N`) instead of
    /// approximately (`MAXLEN ~ N`, the default, much cheaper).
    #[serde(default)]
    exact_maxlen: bool,
    /// `XADD`: template of the entry id. Default `*` (server-assigned).
    id: Option<Template>,
    /// What this command does for an output whose op is `delete`: `del`
    /// (delete the key), `skip`, or `apply` (run the command as for any
    /// other output). Default `del` for `SET` and `HSET`, `skip` otherwise.
    on_delete: Option<OnDelete>,
}

/// What a command does for an output whose op is `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// `DEL` the command's key.
    Del,
    /// Do nothing.
    Skip,
    /// Run the command as for any other output.
    Apply,
}

/// A command name this sink supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `SET key value [EX ttl]`.
    Set,
    /// `HSET key field value ...`.
    HSet,
    /// `XADD key [MAXLEN [~] n] id field value ...`.
    XAdd,
    /// `SADD key member ...`.
    SAdd,
    /// `ZINCRBY key increment member`.
    ZIncrBy,
    /// `PFADD key element ...`.
    PfAdd,
    /// `INCRBY key increment`.
    IncrBy,
    /// `INCRBYFLOAT key increment`.
    IncrByFloat,
    /// `EXPIRE key seconds`.
    Expire,
    /// `DEL key`.
    Del,
}

impl CommandKind {
    const ALL: [(&'static str, CommandKind); 10] = [
        ("SET", CommandKind::Set),
        ("HSET", CommandKind::HSet),
        ("XADD", CommandKind::XAdd),
        ("SADD", CommandKind::SAdd),
        ("ZINCRBY", CommandKind::ZIncrBy),
        ("PFADD", CommandKind::PfAdd),
        ("INCRBY", CommandKind::IncrBy),
        ("INCRBYFLOAT", CommandKind::IncrByFloat),
        ("EXPIRE", CommandKind::Expire),
        ("DEL", CommandKind::Del),
    ];

    fn parse(name: &str) -> Option<CommandKind> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, k)| k)
    }

    /// The command's name as sent to the server.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |&(n, _)| n)
    }

    /// Whether running it twice with the same arguments leaves the same state.
    pub fn idempotent(self) -> bool {
        !matches!(
            self,
            CommandKind::ZIncrBy
                | CommandKind::IncrBy
                | CommandKind::IncrByFloat
                | CommandKind::XAdd
        )
    }
}

/// An increment: a number, or a template rendering one (parsed as it is
/// read, so a syntax error is reported at the `increment` string).
#[derive(Debug, Clone)]
pub enum Increment {
    /// A constant, as sent (`1`, `2.5`).
    Const(String),
    /// A template, e.g. `{value.amount}`, rendered per output.
    Template(Template),
}

impl<'de> Deserialize<'de> for Increment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Increment;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a template string")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Increment, E> {
                Ok(Increment::Const(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Increment, E> {
                Ok(Increment::Const(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Increment, E> {
                Ok(Increment::Const(f.to_string()))
            }
            fn visit_str<E: de::Error>(self, t: &str) -> Result<Increment, E> {
                Template::parse(t)
                    .map(Increment::Template)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One command, checked: each variant holds exactly what its command
/// takes, with the defaults filled in.
#[derive(Debug, Clone)]
pub enum RedisCommand {
    /// `SET key value [EX ttl]`.
    Set {
        /// Key template.
        key: Template,
        /// Value template (default `{value}`).
        value: Template,
        /// Configured expiry (an output's own `ttl_seconds` wins).
        ttl_seconds: Option<u64>,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `HSET key field value ...`.
    HSet {
        /// Key template.
        key: Template,
        /// Field mapping; `None` = every top-level field.
        fields: Option<Vec<(String, Template)>>,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `XADD key [MAXLEN [~] n] id field value ...`.
    XAdd {
        /// Key template.
        key: Template,
        /// Field mapping; `None` = every top-level field.
        fields: Option<Vec<(String, Template)>>,
        /// Trimming: (exact, max length).
        maxlen: Option<(bool, u64)>,
        /// Entry id template (default `*`).
        id: Template,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `SADD key member ...` or `PFADD key element ...` (`kind` says which).
    AddMembers {
        /// `SAdd` or `PfAdd`.
        kind: CommandKind,
        /// Key template.
        key: Template,
        /// Member templates (at least one).
        members: Vec<Template>,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `ZINCRBY key increment member`.
    ZIncrBy {
        /// Key template.
        key: Template,
        /// The increment (default 1).
        increment: Increment,
        /// Member template.
        member: Template,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `INCRBY key increment` or `INCRBYFLOAT key increment`.
    Incr {
        /// `IncrBy` or `IncrByFloat`.
        kind: CommandKind,
        /// Key template.
        key: Template,
        /// The increment (default 1).
        increment: Increment,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `EXPIRE key seconds`.
    Expire {
        /// Key template.
        key: Template,
        /// Configured expiry (an output's own `ttl_seconds` wins; one of
        /// the two is needed).
        ttl_seconds: Option<u64>,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// `DEL key`.
    Del {
        /// Key template.
        key: Template,
        /// Behaviour for deletes.
        on_delete: OnDelete,
    },
    /// Any command, `cmd` as written with its `args` templates.
    Generic {
        /// The command name as sent.
        name: String,
        /// Argument templates, in order.
        args: Vec<Template>,
        /// Whether a replayed output leaves the same state.
        idempotent: bool,
        /// `skip` or `apply` (a generic command has no key to delete).
        on_delete: OnDelete,
    },
}

impl RedisCommand {
    /// The command's name as sent to the server.
    pub fn name(&self) -> &str {
        match self {
            RedisCommand::Generic { name, .. } => name,
            other => other.kind().map_or("?", CommandKind::name),
        }
    }

    /// The built-in command, `None` for a generic one.
    pub fn kind(&self) -> Option<CommandKind> {
        Some(match self {
            RedisCommand::Set { .. } => CommandKind::Set,
            RedisCommand::HSet { .. } => CommandKind::HSet,
            RedisCommand::XAdd { .. } => CommandKind::XAdd,
            RedisCommand::AddMembers { kind, .. } | RedisCommand::Incr { kind, .. } => *kind,
            RedisCommand::ZIncrBy { .. } => CommandKind::ZIncrBy,
            RedisCommand::Expire { .. } => CommandKind::Expire,
            RedisCommand::Del { .. } => CommandKind::Del,
            RedisCommand::Generic { .. } => return None,
        })
    }

    /// What the command does for an output whose op is `delete`.
    pub fn on_delete(&self) -> OnDelete {
        match self {
            RedisCommand::Set { on_delete, .. }
            | RedisCommand::HSet { on_delete, .. }
            | RedisCommand::XAdd { on_delete, .. }
            | RedisCommand::AddMembers { on_delete, .. }
            | RedisCommand::ZIncrBy { on_delete, .. }
            | RedisCommand::Incr { on_delete, .. }
            | RedisCommand::Expire { on_delete, .. }
            | RedisCommand::Del { on_delete, .. }
            | RedisCommand::Generic { on_delete, .. } => *on_delete,
        }
    }

    /// Whether running it twice with the same arguments leaves the same state.
    pub fn idempotent(&self) -> bool {
        match self {
            RedisCommand::Generic { idempotent, .. } => *idempotent,
            other => other.kind().is_some_and(CommandKind::idempotent),
        }
    }

    /// `commands[i] (CMD)`, the way errors name command `index`.
    pub fn label(&self, index: usize) -> String {
        format!("commands[{index}] ({})", self.name())
    }
}

/// A command table is read as a [`RawCommand`] and checked into its
/// variant inside the table's own visitor: an error raised there carries
/// the table's position (serde's `try_from` would raise it outside, where
/// `toml` no longer knows which array element it came from), and an error
/// in one of its values keeps that value's position.
impl<'de> Deserialize<'de> for RedisCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RedisCommand;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a command table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RedisCommand, A::Error> {
                let raw = RawCommand::deserialize(MapAccessDeserializer::new(map))?;
                raw.check().map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

/// A config mistake in the Redis sink's commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisConfigError {
    /// `commands` is empty.
    #[error("`commands` is empty; configure at least one command")]
    NoCommands,
    /// A command name we do not know, and no `args` to send it generically.
    #[error("unknown command `{cmd}` (expected one of {expected})")]
    UnknownCommand {
        /// What was written.
        cmd: String,
        /// The supported names.
        expected: String,
    },
    /// A required option is missing. Worded as serde's own missing-field
    /// error, so that the config loader, which drops a key whose value is
    /// wrong and reads the table again, does not report the key it dropped
    /// as missing too.
    #[error("missing field `{option}` ({cmd} needs {what})")]
    Missing {
        /// Command name.
        cmd: String,
        /// The option.
        option: &'static str,
        /// What it holds.
        what: &'static str,
    },
    /// An option set where it does not apply, or with a wrong value.
    #[error("{cmd}: {message}")]
    Option {
        /// Command name.
        cmd: String,
        /// What is wrong.
        message: String,
    },
}

impl RedisSinkConfig {
    /// What `weir validate` (and `weir run` before it connects) finds wrong
    /// without the network beyond what reading the commands already
    /// refused: no commands at all, the URL and TLS files (the client is
    /// made, not connected).
    pub fn offline_problems(&self, ctx: &SinkContext) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        if self.commands.is_empty() {
            problems.push((
                vec!["commands".to_owned()],
                RedisConfigError::NoCommands.to_string(),
            ));
        }
        if let Err((setting, message)) = super::sink::open_client(ctx, self) {
            let message = if setting == "url" {
                format!("invalid url: {message}")
            } else {
                message
            };
            problems.push((vec![setting.to_owned()], message));
        }
        problems
    }
}

/// Warn once per command that a replay applies again (at sink start).
pub fn warn_non_idempotent(sink: &str, commands: &[RedisCommand]) {
    for (i, c) in commands.iter().enumerate().filter(|(_, c)| !c.idempotent()) {
        tracing::warn!(
            sink,
            command = %c.label(i),
            "not idempotent: an output written again after a retry or restart (at-least-once delivery) applies it again"
        );
    }
}

/// A built-in default template (`{value}`, `*`): text without placeholders
/// or one known placeholder, so it always parses.
fn default_template(text: &str) -> Template {
    Template::parse(text).unwrap_or_else(|_| unreachable!("default template `{text}` parses"))
}

impl RawCommand {
    /// The options of built-in commands, and whether each is set.
    fn builtin_options(&self) -> [(&'static str, bool); 10] {
        [
            ("key", self.key.is_some()),
            ("value", self.value.is_some()),
            ("ttl_seconds", self.ttl_seconds.is_some()),
            ("fields", self.fields.is_some()),
            ("members", self.members.is_some()),
            ("member", self.member.is_some()),
            ("increment", self.increment.is_some()),
            ("maxlen", self.maxlen.is_some()),
            ("exact_maxlen", self.exact_maxlen),
            ("id", self.id.is_some()),
        ]
    }

    /// A generic command: `cmd` as written, `args` templates.
    fn check_generic(self, args: Vec<Template>) -> Result<RedisCommand, RedisConfigError> {
        let name = self.cmd.trim().to_owned();
        let option_err = |message: String| RedisConfigError::Option {
            cmd: name.clone(),
            message,
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(option_err(format!(
                "`cmd` = `{}` is not a command name (one word; its arguments go in `args`)",
                self.cmd
            )));
        }
        if let Some((option, _)) = self.builtin_options().into_iter().find(|(_, set)| *set) {
            return Err(option_err(format!(
                "`{option}` does not apply to a generic command (`args`): put the key and every other argument in `args`"
            )));
        }
        let on_delete = match self.on_delete.unwrap_or(OnDelete::Skip) {
            OnDelete::Del => {
                return Err(option_err(
                    "`on_delete = \"del\"` needs a `key`; a generic command has none (use `skip`, or `apply` with a second command for deletes)".to_owned(),
                ));
            }
            other => other,
        };
        Ok(RedisCommand::Generic {
            idempotent: self.idempotent.unwrap_or(false),
            name,
            args,
            on_delete,
        })
    }

    /// The command this table describes, or what is wrong with it.
    fn check(mut self) -> Result<RedisCommand, RedisConfigError> {
        if let Some(args) = self.args.take() {
            return self.check_generic(args);
        }
        let kind =
            CommandKind::parse(&self.cmd).ok_or_else(|| RedisConfigError::UnknownCommand {
                cmd: self.cmd.clone(),
                expected: format!(
                    "{}, or any command with `args`",
                    CommandKind::ALL.map(|(n, _)| n).join(", ")
                ),
            })?;
        let cmd = kind.name();
        let option_err = |message: String| RedisConfigError::Option {
            cmd: cmd.to_owned(),
            message,
        };
        if self.idempotent.is_some() {
            return Err(option_err(format!(
                "`idempotent` applies only to a generic command (`args`); {cmd} is {}",
                if kind.idempotent() {
                    "idempotent"
                } else {
                    "not idempotent"
                }
            )));
        }

        // Which options each command takes.
        use CommandKind as K;
        let allowed: &[&str] = match kind {
            K::Set => &["value", "ttl_seconds"],
            K::HSet => &["fields"],
            K::XAdd => &["fields", "maxlen", "exact_maxlen", "id"],
            K::SAdd | K::PfAdd => &["members"],
            K::ZIncrBy => &["member", "increment"],
            K::IncrBy | K::IncrByFloat => &["increment"],
            K::Expire => &["ttl_seconds"],
            K::Del => &[],
        };
        for (name, present) in self.builtin_options().into_iter().skip(1) {
            if present && !allowed.contains(&name) {
                return Err(option_err(format!(
                    "`{name}` does not apply to {cmd} (it takes: {})",
                    if allowed.is_empty() {
                        "only `key`".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
        }

        let missing = |option, what| RedisConfigError::Missing {
            cmd: cmd.to_owned(),
            option,
            what,
        };
        let key = self.key.ok_or_else(|| missing("key", "a key template"))?;
        let fields = match self.fields {
            None => None,
            Some(map) if map.is_empty() => {
                return Err(option_err(
                    "`fields` is empty; leave it out to write every top-level field".to_owned(),
                ));
            }
            Some(map) => Some(map.into_iter().collect()),
        };
        let increment = match self.increment {
            None => Increment::Const("1".to_owned()),
            Some(Increment::Const(n)) if kind == K::IncrBy && n.parse::<i64>().is_err() => {
                return Err(option_err(format!(
                    "`increment` = {n} is not an integer (use INCRBYFLOAT)"
                )));
            }
            Some(other) => other,
        };
        if matches!(kind, K::Set | K::Expire) && self.ttl_seconds == Some(0) {
            return Err(option_err(if kind == K::Set {
                "`ttl_seconds` must be at least 1 (leave it out for no expiry)".to_owned()
            } else {
                "`ttl_seconds` must be at least 1".to_owned()
            }));
        }
        let on_delete = self.on_delete.unwrap_or(match kind {
            K::Set | K::HSet | K::Del => OnDelete::Del,
            _ => OnDelete::Skip,
        });
        Ok(match kind {
            K::Set => RedisCommand::Set {
                key,
                value: self.value.unwrap_or_else(|| default_template("{value}")),
                ttl_seconds: self.ttl_seconds,
                on_delete,
            },
            K::HSet => RedisCommand::HSet {
                key,
                fields,
                on_delete,
            },
            K::XAdd => RedisCommand::XAdd {
                key,
                fields,
                maxlen: self.maxlen.map(|n| (self.exact_maxlen, n)),
                id: self.id.unwrap_or_else(|| default_template("*")),
                on_delete,
            },
            K::SAdd | K::PfAdd => RedisCommand::AddMembers {
                kind,
                key,
                members: match self.members {
                    None => return Err(missing("members", "a list of templates")),
                    Some(m) if m.is_empty() => {
                        return Err(option_err(
                            "`members` is empty; give at least one template".to_owned(),
                        ));
                    }
                    Some(m) => m,
                },
                on_delete,
            },
            K::ZIncrBy => RedisCommand::ZIncrBy {
                key,
                increment,
                member: self
                    .member
                    .ok_or_else(|| missing("member", "a member template"))?,
                on_delete,
            },
            K::IncrBy | K::IncrByFloat => RedisCommand::Incr {
                kind,
                key,
                increment,
                on_delete,
            },
            K::Expire => RedisCommand::Expire {
                key,
                ttl_seconds: self.ttl_seconds,
                on_delete,
            },
            K::Del => RedisCommand::Del { key, on_delete },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands as read, or the message of the first mistake (its
    /// position is the loader's business, tested by `weir validate`'s tests).
    fn compile(toml_text: &str) -> Result<Vec<RedisCommand>, String> {
        let cfg: RedisSinkConfig = toml::from_str(toml_text).map_err(|e| e.message().to_owned())?;
        if cfg.commands.is_empty() {
            return Err(RedisConfigError::NoCommands.to_string());
        }
        Ok(cfg.commands)
    }

    #[test]
    fn compiles_a_full_config() {
        let cmds = compile(
            r#"
            url = "redis://127.0.0.1:16379/"
            [[commands]]
            cmd = "set"
            key = "session:{value.session_id}"
            ttl_seconds = 1800
            [[commands]]
            cmd = "ZINCRBY"
            key = "top"
            member = "{value.url}"
            [[commands]]
            cmd = "XADD"
            key = "s"
            maxlen = 1000
            "#,
        )
        .unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].kind(), Some(CommandKind::Set));
        assert_eq!(cmds[0].on_delete(), OnDelete::Del);
        assert_eq!(cmds[1].on_delete(), OnDelete::Skip);
        assert!(
            matches!(&cmds[2], RedisCommand::XAdd { maxlen: Some((false, 1000)), id, .. } if id.source() == "*"),
            "{:?}",
            cmds[2]
        );
    }

    #[test]
    fn errors_name_sink_and_command_index() {
        let base = "url = \"redis://x/\"\n[[commands]]\ncmd = \"SET\"\nkey = \"a\"\n";
        assert_eq!(
            compile(&format!(
                "{base}[[commands]]\ncmd = \"LPUSH\"\nkey = \"k\"\n"
            ))
            .unwrap_err(),
            "unknown command `LPUSH` (expected one of SET, HSET, XADD, SADD, ZINCRBY, PFADD, INCRBY, INCRBYFLOAT, EXPIRE, DEL, or any command with `args`)"
        );
        // Templates are parsed as the config is read: the error is the
        // deserializer's, at the string.
        let err = compile(&format!("{base}[[commands]]\ncmd = \"SADD\"\nkey = \"user:{{value.user_id\"\nmembers = [\"x\"]\n")).unwrap_err();
        assert!(
            err.contains("template `user:{value.user_id`: unclosed `{` at byte 5"),
            "{err}"
        );
        assert_eq!(
            compile(&format!(
                "{base}[[commands]]\ncmd = \"SADD\"\nkey = \"k\"\n"
            ))
            .unwrap_err(),
            "missing field `members` (SADD needs a list of templates)"
        );
        assert_eq!(
            compile(&format!("{base}[[commands]]\ncmd = \"SADD\"\nkey = \"k\"\nmembers = [\"a\"]\nttl_seconds = 5\n")).unwrap_err(),
            "SADD: `ttl_seconds` does not apply to SADD (it takes: members)"
        );
        assert_eq!(
            compile(&format!(
                "{base}[[commands]]\ncmd = \"INCRBY\"\nkey = \"k\"\nincrement = 1.5\n"
            ))
            .unwrap_err(),
            "INCRBY: `increment` = 1.5 is not an integer (use INCRBYFLOAT)"
        );
        assert!(
            compile("url = \"x\"\ncommands = []\n")
                .unwrap_err()
                .contains("`commands` is empty")
        );
        assert!(
            compile(&format!("{base}bogus = 1\n"))
                .unwrap_err()
                .contains("unknown field `bogus`")
        );
    }

    #[test]
    fn generic_commands_compile_and_are_not_idempotent_unless_said() {
        let cmds = compile(
            r#"
            url = "redis://127.0.0.1:16379/"
            [[commands]]
            cmd = "TS.ADD"
            args = ["pageviews:{value.url}", "{value.ts}", "1"]
            [[commands]]
            cmd = "JSON.SET"
            args = ["doc:{value.id}", "$", "{value}"]
            idempotent = true
            on_delete = "apply"
            "#,
        )
        .unwrap();
        assert_eq!(cmds[0].kind(), None);
        assert_eq!(cmds[0].label(0), "commands[0] (TS.ADD)");
        assert!(matches!(&cmds[0], RedisCommand::Generic { args, .. } if args.len() == 3));
        assert!(!cmds[0].idempotent());
        assert_eq!(cmds[0].on_delete(), OnDelete::Skip);
        assert!(cmds[1].idempotent());
        assert_eq!(cmds[1].on_delete(), OnDelete::Apply);
    }

    #[test]
    fn generic_command_mistakes_are_named() {
        let err = |body: &str| {
            compile(&format!("url = \"redis://x/\"\n[[commands]]\n{body}")).unwrap_err()
        };
        assert_eq!(
            err("cmd = \"TS.ADD\"\nkey = \"k\"\nargs = [\"k\"]\n"),
            "TS.ADD: `key` does not apply to a generic command (`args`): put the key and every other argument in `args`"
        );
        assert!(
            err("cmd = \"TS.ADD\"\nargs = [\"{value.x\"]\n")
                .contains("template `{value.x`: unclosed `{` at byte 0")
        );
        assert_eq!(
            err("cmd = \"TS ADD\"\nargs = []\n"),
            "TS ADD: `cmd` = `TS ADD` is not a command name (one word; its arguments go in `args`)"
        );
        assert!(err("cmd = \"X\"\nargs = []\non_delete = \"del\"\n").contains("needs a `key`"));
        assert_eq!(
            err("cmd = \"SET\"\nkey = \"k\"\nidempotent = false\n"),
            "SET: `idempotent` applies only to a generic command (`args`); SET is idempotent"
        );
        assert_eq!(
            err("cmd = \"SET\"\n"),
            "missing field `key` (SET needs a key template)"
        );
    }
}
