//! `weir plugin test` and `weir plugin inspect`: the plugin author's loop.
//!
//! `test` runs a plugin file over JSON-lines events (or lines or bytes that
//! are not JSON) through the same engine the pipelines use (same sandbox,
//! limits and poison-event isolation) and prints one JSON line per outcome,
//! or compares them with a golden file ([`super::golden`]); `inspect`
//! prints what a plugin file exports and imports and which contract
//! version it speaks.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::config::Config;
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
    /// Write a new plugin project (source, test, sample events, README).
    New(super::scaffold::NewArgs),
    /// Build a plugin project into a component and print the `.wasm` path.
    Build(super::plugin_build::BuildArgs),
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

  Input that is not JSON: --input-format lines makes each line's bytes
  (without the line break) the value of one upsert event; --input-format
  bytes makes the whole input the value of a single event.

OUTPUT
  One JSON line per event on stdout, in input order:
    {\"line\":N,\"outcome\":\"emit\",\"outputs\":[{\"route\":..,\"key\":..,\"value\":..,
      \"op\":..,\"headers\":{..},\"ttl_seconds\":..}]}
    {\"line\":N,\"outcome\":\"drop\"}
    {\"line\":N,\"outcome\":\"fail\",\"reason\":\"...\"}
  An output value is shown as JSON when it is valid JSON, else as a string.
  A summary line goes to stderr. Exit status 0 when every event was
  processed (fail outcomes included); 1 on a bad plugin or a bad input line.

GOLDEN FILES
  --record FILE writes the outcome lines to FILE as well as to stdout.
  --expect FILE compares them with FILE instead of printing them: every
  difference is listed by input line and JSON path (exit status 1), or
  \"matches\" is printed (exit status 0). Lines compare as JSON values, so
  spacing and member order in FILE do not matter.

PLUGIN FROM A PIPELINE CONFIG
  --from weir.toml --plugin NAME runs [plugins.NAME] of that config: its
  path (relative to the config file), config, limits and grants. --config
  entries are added to (or replace keys of) its config; --memory-mib,
  --deadline-ms and --grant-* override its limits and grants.";

/// `weir plugin test`
#[derive(Debug, Args)]
#[command(after_long_help = TEST_HELP)]
pub struct TestArgs {
    /// The plugin component (`.wasm`, built for wasm32-wasip2), or
    /// `builtin:filter`, `builtin:transform`, `builtin:router`.
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub file: Option<PathBuf>,
    /// Take the plugin (path, config, limits, grants) from this pipeline
    /// config file; name it with `--plugin`.
    #[arg(long, value_name = "CONFIG", requires = "plugin")]
    pub from: Option<PathBuf>,
    /// The `[plugins.NAME]` entry of the `--from` config to run.
    #[arg(long, value_name = "NAME", requires = "from")]
    pub plugin: Option<String>,
    /// A config entry handed to the plugin's `init` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Input file of events; standard input when absent or `-`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// How the input is read: `json` (JSON lines: envelopes or bare
    /// values), `lines` (each line's bytes are one event value, JSON or
    /// not) or `bytes` (the whole input is one event value).
    #[arg(long, value_enum, default_value_t = InputFormat::Json)]
    pub input_format: InputFormat,
    /// Events per call to the plugin.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Read every line as a bare event value, even objects that look like
    /// envelopes.
    #[arg(long)]
    pub raw: bool,
    /// Compare the outcomes with this golden JSON-lines file (as written by
    /// `--record`) and print the differences; exit status 1 if any.
    #[arg(long, value_name = "FILE", conflicts_with = "record")]
    pub expect: Option<PathBuf>,
    /// Write the outcome lines to this file too: a golden file for
    /// `--expect`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Memory cap of the plugin instance, in MiB (default 64, or the
    /// `--from` plugin's `limits.memory_mib`).
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<u32>,
    /// Deadline of one call (one batch), in milliseconds (default 1000, or
    /// the `--from` plugin's `limits.deadline_ms`).
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,
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

/// How `weir plugin test` reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// JSON lines: an envelope or a bare JSON value per line.
    Json,
    /// One event per line, its bytes as the value (JSON or not).
    Lines,
    /// The whole input as the value of one event.
    Bytes,
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
        PluginCommand::New(args) => super::scaffold::new(args),
        PluginCommand::Build(args) => super::plugin_build::build(args),
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
    let (input_name, bytes) = read_input(args.input.as_deref())?;
    let events = match args.input_format {
        InputFormat::Json => {
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{input_name} is not UTF-8 text ({e}); use --input-format lines or bytes \
                     for input that is not JSON"
                )
            })?;
            parse_events(text, &input_name, args.raw)?
        }
        InputFormat::Lines => line_events(&bytes, &input_name),
        InputFormat::Bytes => vec![(1, bytes_event(bytes, &input_name, 1))],
    };
    let expected = match &args.expect {
        Some(path) => Some(super::golden::Golden::read(path)?),
        None => None,
    };

    let spec = test_spec(&args)?;
    let engine = engine(args.cache_dir.clone(), args.no_cache)?;
    let version = engine.load(&spec)?;
    let mut instance = version.instantiate()?;

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut lines = Vec::with_capacity(events.len());
    for chunk in events.chunks(args.batch_size as usize) {
        let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
        let outcomes = instance.process_batch(&batch)?;
        for ((lineno, _), outcome) in chunk.iter().zip(&outcomes) {
            summary.count(outcome);
            let mut line = String::new();
            render_outcome(*lineno, outcome, &mut line);
            lines.push(line);
        }
    }
    let elapsed = started.elapsed();

    if let Some(path) = &args.record {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the golden file {}", path.display()))?;
    }
    let status = match &expected {
        Some(golden) => {
            let report = golden.compare(&lines);
            super::output::stdout(&report.to_string())
                .context("cannot write to standard output")?;
            if report.matches() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            for line in &lines {
                out.write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .context("cannot write to standard output")?;
            }
            out.flush().context("cannot write to standard output")?;
            ExitCode::SUCCESS
        }
    };
    super::output::stderr_line(&format!(
        "{} events: {} outputs emitted, {} dropped, {} failed in {:.1} ms",
        summary.events,
        summary.outputs,
        summary.dropped,
        summary.failed,
        elapsed.as_secs_f64() * 1e3
    ));
    Ok(status)
}

/// The plugin to run: the positional file, or `[plugins.NAME]` of the
/// `--from` config, with the command line's overrides.
fn test_spec(args: &TestArgs) -> anyhow::Result<PluginSpec> {
    let mut spec = match (&args.file, &args.from, &args.plugin) {
        (_, Some(from), Some(name)) => spec_from_config(from, name)?,
        (Some(file), _, _) => PluginSpec {
            name: plugin_name(file),
            path: file.clone(),
            config: Vec::new(),
            limits: PluginLimits::default(),
            grants: PluginGrants::default(),
        },
        // clap requires FILE or --from with --plugin.
        _ => bail!("name a plugin file, or a config with --from CONFIG --plugin NAME"),
    };
    for (key, value) in &args.config {
        match spec.config.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1.clone_from(value),
            None => spec.config.push((key.clone(), value.clone())),
        }
    }
    if let Some(mib) = args.memory_mib {
        spec.limits.memory_mib = mib;
    }
    if let Some(ms) = args.deadline_ms {
        spec.limits.deadline_ms = ms;
    }
    spec.grants.clock |= args.grant_clock;
    spec.grants.random |= args.grant_random;
    for name in &args.grant_env {
        if !spec.grants.env.contains(name) {
            spec.grants.env.push(name.clone());
        }
    }
    Ok(spec)
}

/// `[plugins.NAME]` of the config at `path`, loaded as `weir run` loads it.
fn spec_from_config(path: &Path, name: &str) -> anyhow::Result<PluginSpec> {
    let loaded = Config::load(path).map_err(|errors| {
        let lines: Vec<String> = errors.all().iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!(
            "{} has errors, so its plugins cannot be used:\n{}",
            path.display(),
            lines.join("\n")
        )
    })?;
    let Some(plugin) = loaded.config.plugins.get(name) else {
        let known: Vec<&str> = loaded.config.plugins.keys().map(String::as_str).collect();
        bail!(
            "{} has no [plugins.{name}] (plugins: {})",
            path.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    if let Some((key, found)) = plugin.unpassable_config().into_iter().next() {
        bail!(
            "[plugins.{name}] config `{key}` is an {found}, which cannot reach the plugin's init"
        );
    }
    let mut spec = crate::runtime::plugin_spec(name, plugin, &loaded.dir);
    // The stores the config grants, as `weir run` opens them: the plugin's
    // lookups reach the real stores.
    let lookups = crate::lookup::Lookups::open(&loaded.config.lookups, &loaded.dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    spec.grants.lookups = lookups.grant(&plugin.lookups);
    Ok(spec)
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

/// The input's display name and its bytes.
fn read_input(path: Option<&Path>) -> anyhow::Result<(String, Vec<u8>)> {
    match path {
        Some(p) if p != Path::new("-") => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("cannot read the input file {}", p.display()))?;
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((name, bytes))
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok(("stdin".to_owned(), bytes))
        }
    }
}

/// An upsert event whose value is `bytes` as they are.
fn bytes_event(bytes: impl Into<Bytes>, input: &str, lineno: usize) -> Event {
    Event {
        value: Some(bytes.into()),
        op: Op::Upsert,
        origin: format!("{input}/0/{lineno}"),
        ..Event::default()
    }
}

/// `--input-format lines`: one event per line (a `\r\n` ending counts as a
/// line break), the line's bytes as the value. Empty lines are skipped, as
/// blank lines are in JSON input.
fn line_events(bytes: &[u8], input: &str) -> Vec<(usize, Event)> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (!line.is_empty()).then(|| (i + 1, bytes_event(line.to_vec(), input, i + 1)))
        })
        .collect()
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
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, input, lineno, raw) {
            Ok(event) => events.push((lineno, event)),
            Err(problem) if problem.starts_with("column ") => {
                bail!("{input} line {lineno}, {problem}")
            }
            Err(problem) => bail!("{input} line {lineno}: {problem}"),
        }
    }
    Ok(events)
}

/// One line, untrimmed, so a syntax error's column is the column in the
/// file.
fn parse_line(untrimmed: &str, input: &str, lineno: usize, raw: bool) -> Result<Event, String> {
    let value: Value = serde_json::from_str(untrimmed).map_err(json_problem)?;
    let line = untrimmed.trim();
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

/// A JSON syntax error of one line: serde_json counts the line as line 1,
/// so only its column is kept ("line 4, column 27" once the caller adds the
/// line number).
fn json_problem(e: serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    format!(
        "column {}: not valid JSON: {message} (--input-format lines reads lines that are not JSON)",
        e.column()
    )
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
        let err = parse_events("{}\n {\"a\":\n", "in.jsonl", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.jsonl line 2, column 6: not valid JSON: EOF while parsing a value \
             (--input-format lines reads lines that are not JSON)"
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
