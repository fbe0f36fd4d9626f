//! `weir plugin test` and `weir plugin inspect`: the plugin author's loop.
//!
//! `test` runs a plugin file over JSON-lines events through the same engine
//! the pipelines use (same sandbox, limits and poison-event isolation) and
//! prints one JSON line per outcome; `inspect` prints what a plugin file
//! exports and imports and which contract version it speaks.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::engine::{
    Engine, EngineOptions, PluginGrants, PluginLimits, PluginSpec, Transform, default_cache_dir,
};
use crate::event::{Event, Header, Op, Outcome, Output};

/// `weir plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a plugin over JSON-lines events and print one outcome per event.
    Test(TestArgs),
    /// Print a plugin's contract version, exports and imports.
    Inspect(InspectArgs),
}

/// How input lines are read, shown by `weir plugin test --help`.
const TEST_HELP: &str = "\
INPUT
  One event per line; blank lines are skipped. All lines are checked before
  the plugin runs, and a bad line stops the command with its line number.

  A line is an envelope if it is a JSON object that has a \"key\" or a
  \"value\" member and no members other than:
    key           string (its UTF-8 bytes) or any other JSON (its text)
    value         any JSON: the event value; null for a tombstone
    old_value     any JSON: the previous value (as DynamoDB's OLD_IMAGE)
    op            \"insert\", \"upsert\" or \"delete\"
                  (default: upsert, or delete when value is null or absent)
    headers       object of string -> string
    timestamp_ms  integer, ms since the Unix epoch (default 0)
    origin        string (default INPUT/0/LINE)
  Any other line is a bare JSON value, used as the event value as written.
  Use --raw to read every line as a bare value.

OUTPUT
  One JSON line per event on stdout, in input order:
    {\"line\":N,\"outcome\":\"emit\",\"outputs\":[{\"route\":..,\"key\":..,\"value\":..,
      \"op\":..,\"headers\":{..},\"ttl_seconds\":..}]}
    {\"line\":N,\"outcome\":\"drop\"}
    {\"line\":N,\"outcome\":\"fail\",\"reason\":\"...\"}
  An output value is shown as JSON when it is valid JSON, else as a string.
  A summary line goes to stderr. Exit status 0 when every event was
  processed (fail outcomes included); 1 on a bad plugin or a bad input line.";

/// `weir plugin test`
#[derive(Debug, Args)]
#[command(after_long_help = TEST_HELP)]
pub struct TestArgs {
    /// The plugin component (`.wasm`, built for wasm32-wasip2), or
    /// `builtin:filter`, `builtin:transform`, `builtin:router`.
    pub file: PathBuf,
    /// A config entry handed to the plugin's `init` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// JSON-lines file of events; standard input when absent or `-`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Events per call to the plugin.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Read every line as a bare event value, even objects that look like
    /// envelopes.
    #[arg(long)]
    pub raw: bool,
    /// Memory cap of the plugin instance, in MiB.
    #[arg(long, default_value_t = PluginLimits::default().memory_mib)]
    pub memory_mib: u32,
    /// Deadline of one call (one batch), in milliseconds.
    #[arg(long, default_value_t = PluginLimits::default().deadline_ms)]
    pub deadline_ms: u64,
    /// Give the plugin the real wall and monotonic clocks.
    #[arg(long)]
    pub grant_clock: bool,
    /// Give the plugin real randomness.
    #[arg(long)]
    pub grant_random: bool,
    /// Pass this environment variable to the plugin (repeatable).
    #[arg(long, value_name = "NAME")]
    pub grant_env: Vec<String>,
    /// Directory of the compiled-plugin cache (default: ~/.cache/weir/plugins).
    #[arg(long, env = "WEIR_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the plugin without reading or writing the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// `weir plugin inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (`.wasm`), or `builtin:NAME`.
    pub file: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Run a `weir plugin` subcommand.
pub fn plugin(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Test(args) => test(args),
        PluginCommand::Inspect(args) => inspect(args),
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Send plugin logs (and the engine's) to stderr unless the binary already
/// set up logging. `WEIR_LOG` filters as `RUST_LOG` would.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::secrets::RedactingStderr::default)
        .try_init();
}

fn engine(cache_dir: Option<PathBuf>, no_cache: bool) -> anyhow::Result<Engine> {
    let cache_dir = if no_cache {
        None
    } else {
        cache_dir.or_else(default_cache_dir)
    };
    Ok(Engine::new(EngineOptions { cache_dir })?)
}

fn plugin_name(path: &Path) -> String {
    if let Some(name) = crate::builtin::builtin_name(path) {
        return name.to_owned();
    }
    path.file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// `weir plugin test`: see [`TEST_HELP`].
pub fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let (input_name, text) = read_input(args.input.as_deref())?;
    let events = parse_events(&text, &input_name, args.raw)?;

    let engine = engine(args.cache_dir, args.no_cache)?;
    let spec = PluginSpec {
        name: plugin_name(&args.file),
        path: args.file.clone(),
        config: args.config,
        limits: PluginLimits {
            memory_mib: args.memory_mib,
            deadline_ms: args.deadline_ms,
            ..PluginLimits::default()
        },
        grants: PluginGrants {
            clock: args.grant_clock,
            random: args.grant_random,
            env: args.grant_env,
        },
    };
    let version = engine.load(&spec)?;
    let mut instance = version.instantiate()?;

    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut summary = Summary::default();
    let mut line = String::new();
    for chunk in events.chunks(args.batch_size as usize) {
        let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
        let outcomes = instance.process_batch(&batch)?;
        for ((lineno, _), outcome) in chunk.iter().zip(&outcomes) {
            summary.count(outcome);
            line.clear();
            render_outcome(*lineno, outcome, &mut line);
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .context("cannot write to standard output")?;
        }
    }
    out.flush().context("cannot write to standard output")?;
    super::output::stderr_line(&format!(
        "{} events: {} outputs emitted, {} dropped, {} failed in {:.1} ms",
        summary.events,
        summary.outputs,
        summary.dropped,
        summary.failed,
        started.elapsed().as_secs_f64() * 1e3
    ));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default)]
struct Summary {
    events: u64,
    outputs: u64,
    dropped: u64,
    failed: u64,
}

impl Summary {
    fn count(&mut self, outcome: &Outcome) {
        self.events += 1;
        match outcome {
            Outcome::Emit(outputs) => self.outputs += outputs.len() as u64,
            Outcome::Drop => self.dropped += 1,
            Outcome::Fail(_) => self.failed += 1,
        }
    }
}

/// `weir plugin inspect`.
pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let engine = engine(None, false)?;
    let info = engine.inspect(&args.file)?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&info)?)
    } else {
        info.to_string()
    };
    super::output::stdout(&text).context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// The input's display name and its text.
fn read_input(path: Option<&Path>) -> anyhow::Result<(String, String)> {
    match path {
        Some(p) if p != Path::new("-") => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the input file {}", p.display()))?;
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((name, text))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            Ok(("stdin".to_owned(), text))
        }
    }
}

/// Members an envelope line may have.
const ENVELOPE_KEYS: [&str; 7] = [
    "key",
    "value",
    "old_value",
    "op",
    "headers",
    "timestamp_ms",
    "origin",
];

/// Parse every non-blank line into an event, with its 1-based line number.
/// The first bad line is an error naming the input and the line.
fn parse_events(text: &str, input: &str, raw: bool) -> anyhow::Result<Vec<(usize, Event)>> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line, input, lineno, raw) {
            Ok(event) => events.push((lineno, event)),
            Err(problem) => bail!("{input} line {lineno}: {problem}"),
        }
    }
    Ok(events)
}

fn parse_line(line: &str, input: &str, lineno: usize, raw: bool) -> Result<Event, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let origin = format!("{input}/0/{lineno}");
    let envelope = match &value {
        Value::Object(map)
            if !raw
                && (map.contains_key("key") || map.contains_key("value"))
                && map.keys().all(|k| ENVELOPE_KEYS.contains(&k.as_str())) =>
        {
            map
        }
        _ => {
            return Ok(Event {
                value: Some(Bytes::copy_from_slice(line.as_bytes())),
                op: Op::Upsert,
                origin,
                ..Event::default()
            });
        }
    };

    let json_bytes = |v: &Value| match v {
        Value::Null => None,
        v => Some(Bytes::from(v.to_string())),
    };
    let key = match envelope.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Bytes::from(s.clone())),
        Some(other) => Some(Bytes::from(other.to_string())),
    };
    let value = envelope.get("value").and_then(json_bytes);
    let old_value = envelope.get("old_value").and_then(json_bytes);
    let op = match envelope.get("op") {
        None | Some(Value::Null) if value.is_some() => Op::Upsert,
        None | Some(Value::Null) => Op::Delete,
        Some(Value::String(s)) => {
            Op::parse(s).ok_or_else(|| format!("op must be insert, upsert or delete, not `{s}`"))?
        }
        Some(other) => return Err(format!("op must be a string, not {other}")),
    };
    let headers = match envelope.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok(Header::new(k.clone(), Bytes::from(s.clone()))),
                other => Err(format!("header `{k}` must be a string, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("headers must be an object, not {other}")),
    };
    let timestamp_ms = match envelope.get("timestamp_ms") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("timestamp_ms must be an integer, not {v}"))?,
    };
    let origin = match envelope.get("origin") {
        None | Some(Value::Null) => origin,
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("origin must be a string, not {other}")),
    };
    Ok(Event {
        key,
        value,
        old_value,
        op,
        headers,
        timestamp_ms,
        origin,
    })
}

/// Append `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// Append bytes as a JSON string (lossy UTF-8), or `null`.
fn push_opt_bytes_str(out: &mut String, b: Option<&[u8]>) {
    match b {
        Some(b) => push_json_str(out, &String::from_utf8_lossy(b)),
        None => out.push_str("null"),
    }
}

/// Append a value as written when it is single-line JSON, as compact JSON
/// when it is multi-line JSON, and as a string otherwise.
fn push_value(out: &mut String, b: Option<&[u8]>) {
    let Some(b) = b else {
        out.push_str("null");
        return;
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok() {
        match std::str::from_utf8(b) {
            Ok(s) if !s.contains(['\n', '\r']) => out.push_str(s.trim()),
            _ => match serde_json::from_slice::<Value>(b) {
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => push_opt_bytes_str(out, Some(b)),
            },
        }
    } else {
        push_opt_bytes_str(out, Some(b));
    }
}

fn push_output(out: &mut String, o: &Output) {
    out.push_str("{\"route\":");
    match &o.route {
        Some(r) => push_json_str(out, r),
        None => out.push_str("null"),
    }
    out.push_str(",\"key\":");
    push_opt_bytes_str(out, o.key.as_deref());
    out.push_str(",\"value\":");
    push_value(out, o.value.as_deref());
    out.push_str(",\"op\":");
    push_json_str(out, o.op.as_str());
    out.push_str(",\"headers\":{");
    for (i, h) in o.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, &h.key);
        out.push(':');
        push_json_str(out, &String::from_utf8_lossy(&h.value));
    }
    out.push_str("},\"ttl_seconds\":");
    match o.ttl_seconds {
        Some(t) => out.push_str(&t.to_string()),
        None => out.push_str("null"),
    }
    out.push('}');
}

/// One output line for the event read from line `lineno`.
fn render_outcome(lineno: usize, outcome: &Outcome, out: &mut String) {
    out.push_str("{\"line\":");
    out.push_str(&lineno.to_string());
    match outcome {
        Outcome::Emit(outputs) => {
            out.push_str(",\"outcome\":\"emit\",\"outputs\":[");
            for (i, o) in outputs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_output(out, o);
            }
            out.push_str("]}");
        }
        Outcome::Drop => out.push_str(",\"outcome\":\"drop\"}"),
        Outcome::Fail(reason) => {
            out.push_str(",\"outcome\":\"fail\",\"reason\":");
            push_json_str(out, reason);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_values_and_envelopes() {
        let text = "{\"a\":1}\n\n{\"key\":\"k1\",\"value\":{\"b\":2},\"headers\":{\"h\":\"v\"}}\n42\n{\"value\":null}\n";
        let events = parse_events(text, "in.jsonl", false).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].0, 1);
        assert_eq!(events[0].1.value.as_deref(), Some(b"{\"a\":1}".as_slice()));
        assert_eq!(events[0].1.origin, "in.jsonl/0/1");
        assert_eq!(events[1].0, 3);
        assert_eq!(events[1].1.key.as_deref(), Some(b"k1".as_slice()));
        assert_eq!(events[1].1.value.as_deref(), Some(b"{\"b\":2}".as_slice()));
        assert_eq!(events[1].1.headers, vec![Header::new("h", "v")]);
        assert_eq!(events[2].1.value.as_deref(), Some(b"42".as_slice()));
        assert_eq!(events[3].1.value, None);
        assert_eq!(events[3].1.op, Op::Delete);
        // An object with other members is a bare value.
        let events = parse_events("{\"value\":1,\"other\":2}", "x", false).unwrap();
        assert_eq!(
            events[0].1.value.as_deref(),
            Some(b"{\"value\":1,\"other\":2}".as_slice())
        );
        // --raw reads envelopes as values too.
        let events = parse_events("{\"value\":1}", "x", true).unwrap();
        assert_eq!(
            events[0].1.value.as_deref(),
            Some(b"{\"value\":1}".as_slice())
        );
    }

    #[test]
    fn bad_lines_name_their_number() {
        let err = parse_events("{}\n{\"a\":\n", "in.jsonl", false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("in.jsonl line 2: not valid JSON"),
            "{err}"
        );
        let err = parse_events("{\"value\":1,\"op\":\"merge\"}", "in", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in line 1: op must be insert, upsert or delete, not `merge`"
        );
    }

    #[test]
    fn renders_outcomes() {
        let mut s = String::new();
        render_outcome(
            3,
            &Outcome::Emit(vec![Output {
                route: Some("mongo".into()),
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{\"z\":1,\"a\":2}")),
                op: Op::Upsert,
                headers: vec![Header::new("h", "v")],
                ttl_seconds: Some(60),
            }]),
            &mut s,
        );
        assert_eq!(
            s,
            r#"{"line":3,"outcome":"emit","outputs":[{"route":"mongo","key":"k","value":{"z":1,"a":2},"op":"upsert","headers":{"h":"v"},"ttl_seconds":60}]}"#
        );
        s.clear();
        render_outcome(4, &Outcome::Fail("boom \"x\"".into()), &mut s);
        assert_eq!(s, r#"{"line":4,"outcome":"fail","reason":"boom \"x\""}"#);
        s.clear();
        render_outcome(5, &Outcome::Drop, &mut s);
        assert_eq!(s, r#"{"line":5,"outcome":"drop"}"#);
    }
}
