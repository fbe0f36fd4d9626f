//! The `[sinks.NAME]` settings of a Redis/Valkey sink and their validation
//! into compiled commands.
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

use serde::Deserialize;

use super::template::Template;
use crate::sink::SinkContext;

/// A Redis or Valkey sink: one or more command templates run for every
/// output, pipelined per batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// Server URL: `redis://[user:password@]host:port/db`, `rediss://` for
    /// TLS. The database number and AUTH credentials come from the URL.
    pub url: String,
    /// The commands run for every output, in this order.
    pub commands: Vec<CommandConfig>,
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
#[derive(Debug, Clone, Deserialize)]
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

/// One command template (`[[sinks.NAME.commands]]`). Which keys apply
/// depends on `cmd`; a key that does not apply to the command is an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The command: `SET`, `HSET`, `XADD`, `SADD`, `ZINCRBY`, `PFADD`,
    /// `INCRBY`, `INCRBYFLOAT`, `EXPIRE` or `DEL` (case-insensitive), or,
    /// with `args`, any command (`TS.ADD`, `JSON.SET`, `BF.ADD`, ...).
    pub cmd: String,
    /// Template of the key, e.g. `session:{value.session_id}` (built-in
    /// commands; a generic command has its key among its `args`).
    pub key: Option<Template>,
    /// Generic command: templates of every argument after the command
    /// name, in order, e.g. `["pageviews:{value.url}", "{value.ts}", "1"]`.
    /// Setting it sends `cmd` as it is written, whatever it is, and none of
    /// the built-in options apply.
    pub args: Option<Vec<Template>>,
    /// Generic command: whether running it twice with the same arguments
    /// leaves the same state (`JSON.SET`, `BF.ADD`: yes; `TS.ADD` with the
    /// default duplicate policy, `INCR`: no). Default false: the sink warns
    /// at start that a replayed output applies it again.
    pub idempotent: Option<bool>,
    /// `SET`: template of the value written. Default `{value}` (the whole
    /// JSON value).
    pub value: Option<Template>,
    /// `SET`: expiry in seconds (`SET ... EX`); an output's own
    /// `ttl_seconds` takes precedence. `EXPIRE`: the expiry set (an output's
    /// own `ttl_seconds` takes precedence; one of the two is required).
    pub ttl_seconds: Option<u64>,
    /// `HSET`, `XADD`: field name → value template. Default: every
    /// top-level field of the JSON value (strings bare, the rest as JSON).
    pub fields: Option<BTreeMap<String, Template>>,
    /// `SADD`, `PFADD`: templates of the members added.
    pub members: Option<Vec<Template>>,
    /// `ZINCRBY`: template of the member whose score is incremented.
    pub member: Option<Template>,
    /// `ZINCRBY`, `INCRBY`, `INCRBYFLOAT`: the increment, a number or a
    /// template (`"{value.amount}"`). Default 1.
    pub increment: Option<Increment>,
    /// `XADD`: cap the stream at about this many entries (`MAXLEN ~ N`).
    pub maxlen: Option<u64>,
    /// `XADD`: with `maxlen`, trim exactly (`MAXLEN N`) instead of
    /// approximately (`MAXLEN ~ N`, the default, much cheaper).
    #[serde(default)]
    pub exact_maxlen: bool,
    /// `XADD`: template of the entry id. Default `*` (server-assigned).
    pub id: Option<Template>,
    /// What this command does for an output whose op is `delete`: `del`
    /// (delete the key), `skip`, or `apply` (run the command as for any
    /// other output). Default `del` for `SET` and `HSET`, `skip` otherwise.
    pub on_delete: Option<OnDelete>,
}

/// An increment: a number or a template rendering one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Increment {
    /// An integer constant.
    Int(i64),
    /// A floating-point constant.
    Float(f64),
    /// A template, e.g. `{value.amount}`.
    Template(String),
}

/// What a command does for an output whose op is `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    /// Any command with templated arguments (`cmd` + `args`).
    Generic,
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
            .map_or("generic", |&(n, _)| n)
    }

    /// Whether running it twice with the same arguments leaves the same state.
    pub fn idempotent(self) -> bool {
        !matches!(
            self,
            CommandKind::ZIncrBy
                | CommandKind::IncrBy
                | CommandKind::IncrByFloat
                | CommandKind::XAdd
                | CommandKind::Generic
        )
    }
}

/// A validated increment.
#[derive(Debug, Clone)]
pub enum CompiledIncrement {
    /// A constant, as sent.
    Const(String),
    /// Rendered per output.
    Template(Template),
}

/// A validated command template, ready to render.
#[derive(Debug, Clone)]
pub struct CompiledCommand {
    /// Position in `commands` (for error messages).
    pub index: usize,
    /// Which command.
    pub kind: CommandKind,
    /// The command's name as sent (the built-in name, or a generic `cmd`
    /// as written).
    pub name: String,
    /// Key template (built-in commands).
    pub key: Option<Template>,
    /// Generic command: the argument templates.
    pub args: Vec<Template>,
    /// Whether a replayed output leaves the same state.
    pub idempotent: bool,
    /// `SET` value template.
    pub value: Option<Template>,
    /// Configured expiry.
    pub ttl_seconds: Option<u64>,
    /// `HSET`/`XADD` mapping; `None` = all top-level fields.
    pub fields: Option<Vec<(String, Template)>>,
    /// `SADD`/`PFADD` members, or the one `ZINCRBY` member.
    pub members: Vec<Template>,
    /// `ZINCRBY`/`INCRBY`/`INCRBYFLOAT` increment.
    pub increment: Option<CompiledIncrement>,
    /// `XADD` trimming: (exact, max length).
    pub maxlen: Option<(bool, u64)>,
    /// `XADD` entry id.
    pub id: Option<Template>,
    /// Behaviour for deletes.
    pub on_delete: OnDelete,
}

impl CompiledCommand {
    /// `commands[i] (CMD)`, the way errors name a command.
    pub fn label(&self) -> String {
        format!("commands[{}] ({})", self.index, self.name)
    }
}

/// A config mistake, naming the sink and the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisConfigError {
    /// `commands` is empty.
    #[error("redis sink `{sink}`: `commands` is empty; configure at least one command")]
    NoCommands {
        /// Sink name.
        sink: String,
    },
    /// A command name we do not know.
    #[error(
        "redis sink `{sink}`: commands[{index}]: unknown command `{cmd}` (expected one of {expected})"
    )]
    UnknownCommand {
        /// Sink name.
        sink: String,
        /// Position in `commands`.
        index: usize,
        /// What was written.
        cmd: String,
        /// The supported names.
        expected: String,
    },
    /// A template that does not parse.
    #[error("redis sink `{sink}`: commands[{index}] ({cmd}) `{option}`: {message}")]
    Template {
        /// Sink name.
        sink: String,
        /// Position in `commands`.
        index: usize,
        /// Command name.
        cmd: String,
        /// The option holding the template.
        option: String,
        /// The syntax error.
        message: String,
    },
    /// An option missing, or set where it does not apply.
    #[error("redis sink `{sink}`: commands[{index}] ({cmd}): {message}")]
    Option {
        /// Sink name.
        sink: String,
        /// Position in `commands`.
        index: usize,
        /// Command name.
        cmd: String,
        /// What is wrong.
        message: String,
    },
}

impl RedisConfigError {
    /// The setting at fault, as key segments under `[sinks.NAME]` (`[i]`
    /// indexes `commands`), and the message without the sink's name (the
    /// key names it).
    pub fn keyed(&self) -> (Vec<String>, String) {
        let command = |index: &usize| vec!["commands".to_owned(), format!("[{index}]")];
        match self {
            RedisConfigError::NoCommands { .. } => (
                vec!["commands".to_owned()],
                "`commands` is empty; configure at least one command".to_owned(),
            ),
            RedisConfigError::UnknownCommand {
                index,
                cmd,
                expected,
                ..
            } => {
                let mut key = command(index);
                key.push("cmd".to_owned());
                (
                    key,
                    format!("unknown command `{cmd}` (expected one of {expected})"),
                )
            }
            RedisConfigError::Template {
                index,
                cmd,
                option,
                message,
                ..
            } => {
                let mut key = command(index);
                key.extend(option_segments(option));
                (key, format!("{cmd}: {message}"))
            }
            RedisConfigError::Option {
                index,
                cmd,
                message,
                ..
            } => (command(index), format!("{cmd}: {message}")),
        }
    }
}

/// `fields.NAME` -> `[fields, NAME]`, `members[1]` -> `[members, [1]]`.
fn option_segments(option: &str) -> Vec<String> {
    if let Some(field) = option.strip_prefix("fields.") {
        return vec!["fields".to_owned(), field.to_owned()];
    }
    match option.find('[') {
        Some(i) => vec![option[..i].to_owned(), option[i..].to_owned()],
        None => vec![option.to_owned()],
    }
}

impl RedisSinkConfig {
    /// What `weir validate` (and `weir run` before it connects) finds wrong
    /// without the network: every command ([`Self::compile`]) and the URL
    /// and TLS files (the client is made, not connected).
    pub fn offline_problems(&self, ctx: &SinkContext) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        if let Err(e) = self.compile(&ctx.name) {
            problems.push(e.keyed());
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

    /// Validate every command and compile its templates.
    pub fn compile(&self, sink: &str) -> Result<Vec<CompiledCommand>, RedisConfigError> {
        if self.commands.is_empty() {
            return Err(RedisConfigError::NoCommands {
                sink: sink.to_owned(),
            });
        }
        self.commands
            .iter()
            .enumerate()
            .map(|(index, c)| c.compile(sink, index))
            .collect()
    }
}

/// Warn once per command that a replay applies again (at sink start).
pub fn warn_non_idempotent(sink: &str, commands: &[CompiledCommand]) {
    for c in commands.iter().filter(|c| !c.idempotent) {
        tracing::warn!(
            sink,
            command = %c.label(),
            "not idempotent: an output written again after a retry or restart (at-least-once delivery) applies it again"
        );
    }
}

impl CommandConfig {
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
    fn compile_generic(
        &self,
        sink: &str,
        index: usize,
        args: &[Template],
    ) -> Result<CompiledCommand, RedisConfigError> {
        let name = self.cmd.trim().to_owned();
        let option_err = |message: String| RedisConfigError::Option {
            sink: sink.to_owned(),
            index,
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
        let args = args.to_vec();
        let on_delete = match self.on_delete.unwrap_or(OnDelete::Skip) {
            OnDelete::Del => {
                return Err(option_err(
                    "`on_delete = \"del\"` needs a `key`; a generic command has none (use `skip`, or `apply` with a second command for deletes)".to_owned(),
                ));
            }
            other => other,
        };
        Ok(CompiledCommand {
            index,
            kind: CommandKind::Generic,
            name,
            key: None,
            args,
            idempotent: self.idempotent.unwrap_or(false),
            value: None,
            ttl_seconds: None,
            fields: None,
            members: Vec::new(),
            increment: None,
            maxlen: None,
            id: None,
            on_delete,
        })
    }

    fn compile(&self, sink: &str, index: usize) -> Result<CompiledCommand, RedisConfigError> {
        if let Some(args) = &self.args {
            return self.compile_generic(sink, index, args);
        }
        let kind =
            CommandKind::parse(&self.cmd).ok_or_else(|| RedisConfigError::UnknownCommand {
                sink: sink.to_owned(),
                index,
                cmd: self.cmd.clone(),
                expected: format!(
                    "{}, or any command with `args`",
                    CommandKind::ALL.map(|(n, _)| n).join(", ")
                ),
            })?;
        let cmd = kind.name();
        let option_err = |message: String| RedisConfigError::Option {
            sink: sink.to_owned(),
            index,
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
        let template = |option: &str, text: &str| {
            Template::parse(text).map_err(|e| RedisConfigError::Template {
                sink: sink.to_owned(),
                index,
                cmd: cmd.to_owned(),
                option: option.to_owned(),
                message: e.to_string(),
            })
        };

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
            K::Del | K::Generic => &[],
        };
        let set = [
            ("value", self.value.is_some()),
            ("ttl_seconds", self.ttl_seconds.is_some()),
            ("fields", self.fields.is_some()),
            ("members", self.members.is_some()),
            ("member", self.member.is_some()),
            ("increment", self.increment.is_some()),
            ("maxlen", self.maxlen.is_some()),
            ("exact_maxlen", self.exact_maxlen),
            ("id", self.id.is_some()),
        ];
        for (name, present) in set {
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

        let key = self
            .key
            .clone()
            .ok_or_else(|| option_err("`key` is required".to_owned()))?;
        let value = match kind {
            K::Set => Some(match &self.value {
                Some(t) => t.clone(),
                None => template("value", "{value}")?,
            }),
            _ => None,
        };
        let fields = match &self.fields {
            None => None,
            Some(map) if map.is_empty() => {
                return Err(option_err(
                    "`fields` is empty; leave it out to write every top-level field".to_owned(),
                ));
            }
            Some(map) => Some(map.iter().map(|(f, t)| (f.clone(), t.clone())).collect()),
        };
        let members = match kind {
            K::SAdd | K::PfAdd => {
                let list = self
                    .members
                    .as_ref()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        option_err("`members` is required (a list of templates)".to_owned())
                    })?;
                list.clone()
            }
            K::ZIncrBy => {
                let t = self
                    .member
                    .clone()
                    .ok_or_else(|| option_err("`member` is required".to_owned()))?;
                vec![t]
            }
            _ => Vec::new(),
        };
        let increment = match kind {
            K::ZIncrBy | K::IncrBy | K::IncrByFloat => Some(match &self.increment {
                None => CompiledIncrement::Const("1".to_owned()),
                Some(Increment::Int(n)) => CompiledIncrement::Const(n.to_string()),
                Some(Increment::Float(f)) if kind == K::IncrBy => {
                    return Err(option_err(format!(
                        "`increment` = {f} is not an integer (use INCRBYFLOAT)"
                    )));
                }
                Some(Increment::Float(f)) => CompiledIncrement::Const(f.to_string()),
                Some(Increment::Template(t)) => {
                    CompiledIncrement::Template(template("increment", t)?)
                }
            }),
            _ => None,
        };
        if kind == K::Expire && self.ttl_seconds == Some(0) {
            return Err(option_err("`ttl_seconds` must be at least 1".to_owned()));
        }
        if kind == K::Set && self.ttl_seconds == Some(0) {
            return Err(option_err(
                "`ttl_seconds` must be at least 1 (leave it out for no expiry)".to_owned(),
            ));
        }
        let id = match kind {
            K::XAdd => Some(match &self.id {
                Some(t) => t.clone(),
                None => template("id", "*")?,
            }),
            _ => None,
        };
        let on_delete = self.on_delete.unwrap_or(match kind {
            K::Set | K::HSet | K::Del => OnDelete::Del,
            _ => OnDelete::Skip,
        });
        Ok(CompiledCommand {
            index,
            kind,
            name: cmd.to_owned(),
            key: Some(key),
            args: Vec::new(),
            idempotent: kind.idempotent(),
            value,
            ttl_seconds: self.ttl_seconds,
            fields,
            members,
            increment,
            maxlen: self.maxlen.map(|n| (self.exact_maxlen, n)),
            id,
            on_delete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(toml_text: &str) -> Result<Vec<CompiledCommand>, String> {
        let cfg: RedisSinkConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.compile("cache").map_err(|e| e.to_string())
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
        assert_eq!(cmds[0].kind, CommandKind::Set);
        assert_eq!(cmds[0].on_delete, OnDelete::Del);
        assert_eq!(cmds[1].on_delete, OnDelete::Skip);
        assert_eq!(cmds[2].maxlen, Some((false, 1000)));
    }

    #[test]
    fn errors_name_sink_and_command_index() {
        let base = "url = \"redis://x/\"\n[[commands]]\ncmd = \"SET\"\nkey = \"a\"\n";
        assert_eq!(
            compile(&format!(
                "{base}[[commands]]\ncmd = \"LPUSH\"\nkey = \"k\"\n"
            ))
            .unwrap_err(),
            "redis sink `cache`: commands[1]: unknown command `LPUSH` (expected one of SET, HSET, XADD, SADD, ZINCRBY, PFADD, INCRBY, INCRBYFLOAT, EXPIRE, DEL, or any command with `args`)"
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
            "redis sink `cache`: commands[1] (SADD): `members` is required (a list of templates)"
        );
        assert_eq!(
            compile(&format!("{base}[[commands]]\ncmd = \"SADD\"\nkey = \"k\"\nmembers = [\"a\"]\nttl_seconds = 5\n")).unwrap_err(),
            "redis sink `cache`: commands[1] (SADD): `ttl_seconds` does not apply to SADD (it takes: members)"
        );
        assert_eq!(
            compile(&format!(
                "{base}[[commands]]\ncmd = \"INCRBY\"\nkey = \"k\"\nincrement = 1.5\n"
            ))
            .unwrap_err(),
            "redis sink `cache`: commands[1] (INCRBY): `increment` = 1.5 is not an integer (use INCRBYFLOAT)"
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
        assert_eq!(cmds[0].kind, CommandKind::Generic);
        assert_eq!(cmds[0].label(), "commands[0] (TS.ADD)");
        assert_eq!(cmds[0].args.len(), 3);
        assert!(!cmds[0].idempotent);
        assert_eq!(cmds[0].on_delete, OnDelete::Skip);
        assert!(cmds[1].idempotent);
        assert_eq!(cmds[1].on_delete, OnDelete::Apply);
    }

    #[test]
    fn generic_command_mistakes_are_named() {
        let err = |body: &str| {
            compile(&format!("url = \"redis://x/\"\n[[commands]]\n{body}")).unwrap_err()
        };
        assert_eq!(
            err("cmd = \"TS.ADD\"\nkey = \"k\"\nargs = [\"k\"]\n"),
            "redis sink `cache`: commands[0] (TS.ADD): `key` does not apply to a generic command (`args`): put the key and every other argument in `args`"
        );
        assert!(
            err("cmd = \"TS.ADD\"\nargs = [\"{value.x\"]\n")
                .contains("template `{value.x`: unclosed `{` at byte 0")
        );
        assert_eq!(
            err("cmd = \"TS ADD\"\nargs = []\n"),
            "redis sink `cache`: commands[0] (TS ADD): `cmd` = `TS ADD` is not a command name (one word; its arguments go in `args`)"
        );
        assert!(err("cmd = \"X\"\nargs = []\non_delete = \"del\"\n").contains("needs a `key`"));
        assert_eq!(
            err("cmd = \"SET\"\nkey = \"k\"\nidempotent = false\n"),
            "redis sink `cache`: commands[0] (SET): `idempotent` applies only to a generic command (`args`); SET is idempotent"
        );
        assert_eq!(
            err("cmd = \"SET\"\n"),
            "redis sink `cache`: commands[0] (SET): `key` is required"
        );
    }
}
