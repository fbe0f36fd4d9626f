//! Turning a validated [`Config`] into running pipelines.
//!
//! The runtime loads every plugin a pipeline uses (once, shared by the
//! pipelines that use it), connects every sink (shared, so two pipelines
//! writing to `mongo` share one client), builds one source per pipeline, and
//! runs the pipelines until they stop or the host is asked to stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PipelineConfig};
use crate::engine::{
    Engine, EngineError, EngineOptions, PluginError, PluginSpec, PluginVersion, Transform,
    default_cache_dir,
};
use crate::pipeline::{NamedSink, Pipeline, PipelineError, PipelineParts, PipelineStats};
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
    /// The config names something it does not define (normally caught by
    /// validation first).
    #[error("{0}")]
    Config(String),
    /// A pipeline stopped with an error.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Pipelines ready to run.
pub struct Runtime {
    engine: Arc<Engine>,
    plugins: BTreeMap<String, Arc<PluginVersion>>,
    pipelines: Vec<Pipeline>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("plugins", &self.plugins.keys().collect::<Vec<_>>())
            .field(
                "pipelines",
                &self.pipelines.iter().map(Pipeline::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Runtime {
    /// Load plugins, connect sinks and sources. `config_dir` is where
    /// relative paths in the config are resolved from.
    pub async fn build(config: &Config, config_dir: &Path) -> Result<Runtime, RuntimeError> {
        let cache_dir = config
            .host
            .cache_dir
            .as_ref()
            .map(|d| resolve(config_dir, d))
            .or_else(default_cache_dir);
        let engine = Arc::new(Engine::new(EngineOptions { cache_dir })?);

        let mut plugins = BTreeMap::new();
        for name in config.pipelines.values().flat_map(|p| &p.plugins) {
            if plugins.contains_key(name) {
                continue;
            }
            let plugin = config
                .plugins
                .get(name)
                .ok_or_else(|| RuntimeError::Config(format!("no plugin named `{name}`")))?;
            let spec = PluginSpec {
                name: name.clone(),
                path: resolve(config_dir, &plugin.path),
                config: plugin.init_pairs(),
                limits: plugin.limits,
                grants: plugin.grants.clone(),
            };
            let version = engine.load(&spec)?;
            tracing::info!(plugin = %name, version = %version.hash(), "plugin loaded");
            plugins.insert(name.clone(), version);
        }

        let mut sinks = BTreeMap::new();
        for (name, sink) in &config.sinks {
            let ctx = SinkContext {
                name: name.clone(),
                config_dir: config_dir.to_path_buf(),
            };
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
        for (name, p) in &config.pipelines {
            pipelines.push(build_pipeline(config, config_dir, name, p, &plugins, &sinks).await?);
        }
        Ok(Runtime {
            engine,
            plugins,
            pipelines,
        })
    }

    /// The engine the plugins were loaded with.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The loaded plugins by name.
    pub fn plugins(&self) -> &BTreeMap<String, Arc<PluginVersion>> {
        &self.plugins
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
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let mut running = JoinSet::new();
        for pipeline in self.pipelines {
            let token = shutdown.child_token();
            running.spawn(pipeline.run(token));
        }
        let mut first_error = None;
        while let Some(done) = running.join_next().await {
            let result = match done {
                Ok(r) => r.map_err(RuntimeError::from),
                Err(join) => Err(RuntimeError::Config(format!("a pipeline task panicked: {join}"))),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "pipeline failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn build_pipeline(
    config: &Config,
    config_dir: &Path,
    name: &str,
    p: &PipelineConfig,
    plugins: &BTreeMap<String, Arc<PluginVersion>>,
    sinks: &BTreeMap<String, NamedSink>,
) -> Result<Pipeline, RuntimeError> {
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
        .build(&ctx)
        .await
        .map_err(|error| RuntimeError::Source {
            name: p.source.clone(),
            pipeline: name.to_owned(),
            error,
        })?;

    let mut chain: Vec<Box<dyn Transform>> = Vec::new();
    for plugin in &p.plugins {
        let version = plugins.get(plugin).ok_or_else(|| missing("plugin", plugin))?;
        chain.push(Box::new(version.instantiate()?));
    }

    let sink = |n: &str| sinks.get(n).cloned().ok_or_else(|| missing("sink", n));
    let mut routes: BTreeMap<String, NamedSink> = sinks.clone();
    for (route, target) in &p.routes {
        routes.insert(route.clone(), sink(target)?);
    }
    Ok(Pipeline::new(PipelineParts {
        name: name.to_owned(),
        source_name: p.source.clone(),
        source,
        chain,
        default_route: sink(&p.default_route)?,
        routes,
        dead_letter: p.dead_letter.as_deref().map(sink).transpose()?,
        batch: p.batch,
        retry: p.retry,
    }))
}

fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}
