//! Checks that need the whole config: every connector setting knowable
//! without the network (each connector's `validate`), the admin
//! API's token rule, no explicit consumer group shared by pipelines,
//! names that pipelines use must exist,
//! plugin files must be readable, plugin config values must be passable as strings,
//! sizes and deadlines must not be zero; unused sources, plugins and sinks
//! are warnings (a sink only when no pipeline runs a plugin: plugins can
//! route to any sink by name).
//!
//! A dead-letter sink that is also the pipeline's default route is a
//! warning, not an error: it works (handy for a quick look on stdout), but
//! dead letters and normal outputs end up mixed in one place.

use std::collections::BTreeSet;
use std::path::Path;

use super::Config;
use super::diagnostic::join_key;
use super::load::{Defined, Loader, Nodes, Referenced};

/// What the checks read and where they report.
pub(crate) struct Ctx<'a, 't> {
    pub loader: &'a mut Loader<'t>,
    pub nodes: &'a Nodes,
    pub dir: &'a Path,
    pub defined: &'a Defined,
    pub referenced: &'a Referenced,
}

impl Ctx<'_, '_> {
    /// An error at `key`, unless `key` already has one (an unset `${VAR}`
    /// in a plugin path makes the file unreadable too; say it once).
    fn error(&mut self, key: String, message: String) {
        if self.loader.has_error_at(&key) {
            return;
        }
        let span = self.nodes.nearest_value(&key).unwrap_or(0..0);
        self.loader.error(span, key, message);
    }

    fn warning(&mut self, key: String, message: String) {
        let span = self.nodes.nearest_value(&key).unwrap_or(0..0);
        self.loader.warning(span, key, message);
    }

    /// An error at `key` (if it is in the file, else its nearest parent)
    /// when `value` is zero.
    fn nonzero(&mut self, key: String, value: u64) {
        if value == 0 {
            self.error(key, "must be at least 1".to_owned());
        }
    }

    /// An error when `name` (used at `key`) is not one of `defined`.
    fn exists(&mut self, key: String, what: &str, name: &str, defined: &BTreeSet<String>) {
        if defined.contains(name) {
            return;
        }
        let known = if defined.is_empty() {
            format!("no {what}s are defined")
        } else {
            format!(
                "defined {what}s: {}",
                defined
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.error(key, format!("no {what} named `{name}` ({known})"));
    }
}

/// Run every whole-config check on `config`.
pub(crate) fn check(config: &Config, ctx: &mut Ctx<'_, '_>) {
    for (key, message) in config.host.tracing.problems() {
        ctx.error(format!("host.tracing.{key}"), message);
    }
    // Connector settings checked the way the connector will take them,
    // without connecting (librdkafka's own option checks, for one).
    // A connector whose table already has an error was read without the
    // key at fault; checking the rest would report its absence again.
    for (name, source) in &config.sources {
        let base = join_key("sources", name);
        if ctx.loader.has_error_under(&base) {
            continue;
        }
        for (segments, message) in source.validate(name, ctx.dir).err().unwrap_or_default() {
            ctx.error(key_under(&base, &segments), message);
        }
    }
    for (name, sink) in &config.sinks {
        let base = join_key("sinks", name);
        if ctx.loader.has_error_under(&base) {
            continue;
        }
        for (segments, message) in sink.validate(name, ctx.dir).err().unwrap_or_default() {
            ctx.error(key_under(&base, &segments), message);
        }
    }
    admin(config, ctx);
    shared_groups(config, ctx);
    for (name, plugin) in &config.plugins {
        let base = join_key("plugins", name);
        let path = crate::builtin::resolve(ctx.dir, &plugin.path);
        if let Some(Err(unknown)) = crate::builtin::lookup(&path) {
            ctx.error(join_key(&base, "path"), unknown.to_string());
        } else if !crate::builtin::is_builtin(&path)
            && let Err(reason) = readable(&path)
        {
            ctx.error(
                join_key(&base, "path"),
                format!("cannot read plugin file {}: {reason}", path.display()),
            );
        }
        for (key, found) in plugin.unpassable_config() {
            ctx.error(
                join_key(&join_key(&base, "config"), &key),
                format!(
                    "plugin config values must be strings, numbers, booleans, date-times, tables of them (dotted keys) or lists of them (they are passed to `init` as strings), found {found}"
                ),
            );
        }
        let limits = join_key(&base, "limits");
        ctx.nonzero(
            join_key(&limits, "memory_mib"),
            u64::from(plugin.limits.memory_mib),
        );
        let l = &plugin.limits;
        for (key, value) in [
            ("deadline_ms", l.deadline_ms),
            ("init_deadline_ms", l.init_deadline_ms),
            ("max_outputs_per_event", l.max_outputs_per_event),
            ("max_output_bytes_per_event", l.max_output_bytes_per_event),
            ("max_outputs_per_batch", l.max_outputs_per_batch),
            ("max_output_bytes_per_batch", l.max_output_bytes_per_batch),
        ] {
            ctx.nonzero(join_key(&limits, key), value);
        }
    }

    let stores: BTreeSet<String> = config.lookups.keys().cloned().collect();
    for (name, store) in &config.lookups {
        let base = join_key("lookups", name);
        for (key, message) in store.problems() {
            ctx.error(join_key(&base, &key), message);
        }
    }
    for (name, plugin) in &config.plugins {
        let base = join_key(&join_key("plugins", name), "lookups");
        for (i, store) in plugin.lookups.iter().enumerate() {
            ctx.exists(format!("{base}[{i}]"), "lookup store", store, &stores);
        }
    }

    for (name, p) in &config.pipelines {
        let base = join_key("pipelines", name);
        let defined = ctx.defined;
        ctx.exists(
            join_key(&base, "source"),
            "source",
            &p.source,
            &defined.sources,
        );
        for (i, plugin) in p.plugins.iter().enumerate() {
            ctx.exists(
                format!("{}[{i}]", join_key(&base, "plugins")),
                "plugin",
                plugin,
                &defined.plugins,
            );
        }
        ctx.exists(
            join_key(&base, "default_route"),
            "sink",
            &p.default_route,
            &defined.sinks,
        );
        for (route, sink) in &p.routes {
            ctx.exists(
                join_key(&join_key(&base, "routes"), route),
                "sink",
                sink,
                &defined.sinks,
            );
        }
        if let Some(dl) = &p.dead_letter {
            let key = join_key(&base, "dead_letter");
            ctx.exists(key.clone(), "sink", dl, &defined.sinks);
            if let Some(problem) = config.sinks.get(dl).and_then(|s| s.dead_letter_problem()) {
                ctx.error(
                    key.clone(),
                    format!("sink `{dl}` cannot be a dead-letter sink: {problem}"),
                );
            }
            if *dl == p.default_route {
                ctx.warning(
                    key,
                    format!(
                        "dead-letter sink `{dl}` is also the default route: dead letters and normal outputs will be mixed"
                    ),
                );
            }
        }
        let batch = join_key(&base, "batch");
        ctx.nonzero(join_key(&batch, "max_events"), p.batch.max_events as u64);
        ctx.nonzero(
            join_key(&batch, "max_in_flight"),
            p.batch.max_in_flight as u64,
        );
        if let Some(workers) = p.workers {
            ctx.nonzero(join_key(&base, "workers"), workers as u64);
        }
        ctx.nonzero(
            join_key(&base, "max_concurrent_writes"),
            p.max_concurrent_writes as u64,
        );
        let retry = join_key(&base, "retry");
        ctx.nonzero(join_key(&retry, "initial_ms"), p.retry.initial_ms);
        if p.retry.max_ms < p.retry.initial_ms {
            ctx.error(
                join_key(&retry, "max_ms"),
                format!(
                    "must be at least `initial_ms` ({} ms), is {} ms",
                    p.retry.initial_ms, p.retry.max_ms
                ),
            );
        }
    }

    let (defined, referenced) = (ctx.defined, ctx.referenced);
    for name in defined.sources.difference(&referenced.sources) {
        ctx.warning(
            join_key("sources", name),
            format!("source `{name}` is not used by any pipeline"),
        );
    }
    for name in defined.plugins.difference(&referenced.plugins) {
        ctx.warning(
            join_key("plugins", name),
            format!("plugin `{name}` is not used by any pipeline"),
        );
    }
    // A plugin reaches only the sinks its pipeline names, so a sink no
    // pipeline names is never written.
    for name in defined.sinks.difference(&referenced.sinks) {
        ctx.warning(
            join_key("sinks", name),
            format!(
                "sink `{name}` is not used by any pipeline (no default_route, routes target or dead_letter names it)"
            ),
        );
    }
    if defined.pipelines.is_empty() {
        ctx.loader.warning(
            0..0,
            String::new(),
            "no pipelines are defined: `weir run` has nothing to do".to_owned(),
        );
    }
}

/// `base` and then `segments` (an `[i]` segment indexes an array).
fn key_under(base: &str, segments: &[String]) -> String {
    segments.iter().fold(base.to_owned(), |k, s| {
        if s.starts_with('[') {
            format!("{k}{s}")
        } else {
            join_key(&k, s)
        }
    })
}

/// The admin API refuses to start on a non-loopback address without a
/// token (anyone who can reach it could swap plugins); say so before then.
fn admin(config: &Config, ctx: &mut Ctx<'_, '_>) {
    let admin = &config.host.admin;
    if admin.enabled && !admin.listen.ip().is_loopback() && admin.token().is_none() {
        ctx.error(
            "host.admin.listen".to_owned(),
            crate::admin::AdminError::TokenRequired { addr: admin.listen }.to_string(),
        );
    }
}

/// Pipelines that read one source each join its consumer group (Kafka) or
/// lease group (DynamoDB Streams). With the default each pipeline has its
/// own group (named after it) and sees every event; an explicit group
/// shared by several pipelines splits the partitions or shards between
/// them, so each would silently see only part of the stream.
fn shared_groups(config: &Config, ctx: &mut Ctx<'_, '_>) {
    for (name, source) in &config.sources {
        let Some((setting, group, parts)) = source.explicit_group() else {
            continue;
        };
        let readers: Vec<&str> = config
            .pipelines
            .iter()
            .filter(|(_, p)| p.source == *name)
            .map(|(n, _)| n.as_str())
            .collect();
        if readers.len() < 2 {
            continue;
        }
        ctx.error(
            join_key(&join_key("sources", name), setting),
            format!(
                "pipelines {} all read source `{name}` with {setting} `{group}`: they would share one group and each see only part of the {parts}; \
                 remove `{setting}` (each pipeline then gets its own group) or give each pipeline its own source",
                readers
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

/// Whether `path` is a file this process can open.
fn readable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory".to_owned());
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| e.to_string())
}
