//! Turning a validated [`Config`] into running pipelines.
//!
//! The runtime loads every plugin a pipeline uses (once, shared by the
//! pipelines that use it), connects every sink (shared, so two pipelines
//! writing to `mongo` share one client), builds one source per pipeline, and
//! runs the pipelines until they stop or the host is asked to stop.
//!
//! Plugins live in a [`PluginRegistry`]: each pipeline stage runs a
//! [`ReloadableTransform`](crate::plugin::ReloadableTransform), so a reload
//! (file watch, admin API, SIGHUP) reaches every pipeline using the plugin
//! at its next batch boundary. [`Runtime::admin_state`] is what the admin
//! API serves.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminState, PipelineHealth, RunState};
use crate::config::{Config, PipelineConfig, PluginConfig};
use crate::engine::{
    Engine, EngineError, EngineOptions, PluginError, PluginSpec, PluginVersion, Transform,
    default_cache_dir,
};
use crate::pipeline::{
    DeclaredRoutes, NamedSink, Pipeline, PipelineError, PipelineParts, PipelineStats, UnknownSink,
};
use crate::plugin::watch::{self, WatchOptions};
use crate::plugin::{PluginOptions, PluginRegistry, ReloadError};
use crate::sink::{SinkContext, SinkError};
use crate::source::{SourceContext, SourceError};

/// Why the runtime could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A sink could not be connected.
    #[error("sink `{name}`: {error}")]
    Sink {
        /// Sink name.
        name: String,
        /// What failed.
        error: SinkError,
    },
    /// A source could not be connected.
    #[error("source `{name}` of pipeline `{pipeline}`: {error}")]
    Source {
        /// Source name.
        name: String,
        /// Pipeline name.
        pipeline: String,
        /// What failed.
        error: SourceError,
    },
    /// A connector's settings fail its offline checks (normally caught by
    /// validation first, which reports the same problems at their keys).
    #[error("{kind} `{name}`: {}", problem_list(.problems))]
    Invalid {
        /// `source` or `sink`.
        kind: &'static str,
        /// The connector's name.
        name: String,
        /// `(key segments under its table, message)`, as `validate` gives them.
        problems: Vec<(Vec<String>, String)>,
    },
    /// The config names something it does not define (normally caught by
    /// validation first).
    #[error("{0}")]
    Config(String),
    /// A pipeline stopped with an error.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Plugin files could not be watched.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
}

/// `key: message; ...` (`commands[1].cmd: ...`), a problem of the whole
/// table without a key.
fn problem_list(problems: &[(Vec<String>, String)]) -> String {
    problems
        .iter()
        .map(|(key, message)| {
            if key.is_empty() {
                message.clone()
            } else {
                format!("{}: {message}", key.join(".").replace(".[", "["))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ReloadError> for RuntimeError {
    fn from(err: ReloadError) -> Self {
        match err {
            ReloadError::Load(e) => RuntimeError::Plugin(e),
            other => RuntimeError::Config(other.to_string()),
        }
    }
}

/// Pipelines ready to run.
pub struct Runtime {
    engine: Arc<Engine>,
    registry: Arc<PluginRegistry>,
    pipelines: Vec<Pipeline>,
    health: Vec<PipelineHealth>,
    watch: WatchOptions,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("plugins", &self.registry.names())
            .field(
                "pipelines",
                &self
                    .pipelines
                    .iter()
                    .map(Pipeline::name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Runtime {
    /// Load plugins, connect sinks and sources. `config_dir` is where
    /// relative paths in the config are resolved from.
    pub async fn build(config: &Config, config_dir: &Path) -> Result<Runtime, RuntimeError> {
        let engine = Arc::new(engine(config, config_dir)?);

        let lookups = crate::lookup::Lookups::open(&config.lookups, config_dir)
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        let mut registry = PluginRegistry::new(Arc::clone(&engine), config_dir);
        for name in config.pipelines.values().flat_map(|p| &p.plugins) {
            if registry.current(name).is_some() {
                continue;
            }
            let plugin = config
                .plugins
                .get(name)
                .ok_or_else(|| RuntimeError::Config(format!("no plugin named `{name}`")))?;
            let mut spec = plugin_spec(name, plugin, config_dir);
            spec.grants.lookups = lookups.grant(&plugin.lookups);
            let options = PluginOptions {
                version_header: plugin.version_header.clone(),
                watch: plugin.watch,
            };
            let version = registry.register(spec, options)?;
            tracing::info!(plugin = %name, version = %version.hash(), "plugin loaded");
        }
        let registry = Arc::new(registry);

        let mut sinks = BTreeMap::new();
        for (name, sink) in &config.sinks {
            let ctx = SinkContext {
                name: name.clone(),
                config_dir: config_dir.to_path_buf(),
            };
            let sink =
                sink.validate(name, config_dir)
                    .map_err(|problems| RuntimeError::Invalid {
                        kind: "sink",
                        name: name.clone(),
                        problems,
                    })?;
            let built = sink.build(&ctx).await.map_err(|error| RuntimeError::Sink {
                name: name.clone(),
                error,
            })?;
            sinks.insert(
                name.clone(),
                NamedSink {
                    name: name.clone(),
                    sink: built,
                },
            );
        }

        let mut pipelines = Vec::new();
        let mut health = Vec::new();
        for (name, p) in &config.pipelines {
            let (pipeline, h) =
                build_pipeline(config, config_dir, name, p, &registry, &sinks).await?;
            pipelines.push(pipeline);
            health.push(h);
        }
        Ok(Runtime {
            engine,
            registry,
            pipelines,
            health,
            watch: WatchOptions {
                poll_interval: Duration::from_millis(config.host.plugin_poll_interval_ms.max(10)),
                ..WatchOptions::default()
            },
        })
    }

    /// The engine the plugins were loaded with.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The current version of every plugin, by name.
    pub fn plugins(&self) -> BTreeMap<String, Arc<PluginVersion>> {
        self.registry
            .names()
            .into_iter()
            .filter_map(|n| self.registry.current(&n).map(|v| (n, v)))
            .collect()
    }

    /// The plugins and their hot-swap machinery (reloads, history).
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// What the admin API serves for this runtime.
    pub fn admin_state(&self) -> AdminState {
        AdminState {
            registry: Arc::clone(&self.registry),
            pipelines: self.health.clone(),
        }
    }

    /// Live counters per pipeline name.
    pub fn stats(&self) -> Vec<(String, Arc<PipelineStats>)> {
        self.pipelines
            .iter()
            .map(|p| (p.name().to_owned(), p.stats()))
            .collect()
    }

    /// Run every pipeline until all have stopped: bounded sources run out,
    /// `shutdown` is cancelled (pipelines drain and commit), or one fails
    /// (the others are then stopped too, and the first error is returned).
    /// Plugin files are watched while the pipelines run (`watch` per plugin).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let watching = shutdown.child_token();
        let watcher = watch::spawn(Arc::clone(&self.registry), self.watch, watching.clone())?;
        let mut running = JoinSet::new();
        for (pipeline, health) in self.pipelines.into_iter().zip(&self.health) {
            let token = shutdown.child_token();
            let state = Arc::clone(&health.state);
            let stats = pipeline.stats();
            state.set_running();
            running.spawn(async move {
                let result = pipeline.run(token).await;
                state.set_stopped(result.is_ok());
                stats.set_finished(result.is_ok());
                result
            });
        }
        let mut first_error = None;
        while let Some(done) = running.join_next().await {
            let result = match done {
                Ok(r) => r.map_err(RuntimeError::from),
                Err(join) => Err(RuntimeError::Config(format!(
                    "a pipeline task panicked: {join}"
                ))),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "pipeline failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        watching.cancel();
        if let Some(task) = watcher {
            let _ = task.await;
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn build_pipeline(
    config: &Config,
    config_dir: &Path,
    name: &str,
    p: &PipelineConfig,
    registry: &PluginRegistry,
    sinks: &BTreeMap<String, NamedSink>,
) -> Result<(Pipeline, PipelineHealth), RuntimeError> {
    let missing = |what: &str, n: &str| {
        RuntimeError::Config(format!("pipeline `{name}`: no {what} named `{n}`"))
    };
    let source_config = config
        .sources
        .get(&p.source)
        .ok_or_else(|| missing("source", &p.source))?;
    let ctx = SourceContext {
        name: p.source.clone(),
        pipeline: name.to_owned(),
        config_dir: config_dir.to_path_buf(),
    };
    let source = source_config
        .validate(&p.source, config_dir)
        .map_err(|problems| RuntimeError::Invalid {
            kind: "source",
            name: p.source.clone(),
            problems,
        })?
        .build(&ctx)
        .await
        .map_err(|error| RuntimeError::Source {
            name: p.source.clone(),
            pipeline: name.to_owned(),
            error,
        })?;

    // One chain per worker, each with instances of its own.
    let mut chains: Vec<Vec<Box<dyn Transform>>> = Vec::new();
    for worker in 0..p.worker_count() {
        let mut chain: Vec<Box<dyn Transform>> = Vec::new();
        for (stage, plugin) in p.plugins.iter().enumerate() {
            if registry.current(plugin).is_none() {
                return Err(missing("plugin", plugin));
            }
            chain.push(Box::new(
                registry.transform_on_worker(plugin, name, stage, worker)?,
            ));
        }
        chains.push(chain);
    }

    // Outputs reach only the sinks the pipeline declares.
    let DeclaredRoutes {
        default_route,
        routes,
        dead_letter,
    } = DeclaredRoutes::resolve(p.route_names(), sinks)
        .map_err(|UnknownSink(n)| missing("sink", &n))?;
    // Readiness checks the sinks the pipeline names.
    let mut used: BTreeMap<String, NamedSink> = BTreeMap::new();
    for s in std::iter::once(&default_route)
        .chain(p.routes.values().filter_map(|t| sinks.get(t)))
        .chain(dead_letter.as_ref())
    {
        used.insert(s.name.clone(), s.clone());
    }
    let health_source = Arc::clone(&source);
    let pipeline = Pipeline::new(PipelineParts {
        name: name.to_owned(),
        source_name: p.source.clone(),
        source,
        chains,
        flow: p.flow(),
        default_route,
        routes,
        dead_letter,
        batch: p.batch,
        retry: p.retry,
    })
    .with_stall_after(Duration::from_millis(config.host.stall_after_ms));
    let health = PipelineHealth {
        name: name.to_owned(),
        source_name: p.source.clone(),
        source: health_source,
        sinks: used.into_values().collect(),
        state: Arc::new(RunState::default()),
        stats: pipeline.stats(),
    };
    Ok((pipeline, health))
}

/// The Wasm engine `config` asks for (its compile cache in
/// `[host] cache_dir`, or the default one).
pub fn engine(config: &Config, config_dir: &Path) -> Result<Engine, EngineError> {
    let cache_dir = config
        .host
        .cache_dir
        .as_ref()
        .map(|d| crate::paths::resolve(config_dir, d))
        .or_else(default_cache_dir);
    Engine::new(EngineOptions { cache_dir })
}

/// What the engine loads for `[plugins.NAME]`: its file resolved against
/// the config's directory (a `builtin:` path kept), its `config` as `init` takes it.
pub fn plugin_spec(name: &str, plugin: &PluginConfig, config_dir: &Path) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        path: crate::builtin::resolve(config_dir, &plugin.path),
        config: plugin.init_pairs(),
        limits: plugin.limits,
        grants: plugin.grants.clone(),
    }
}
