//! `weir run <config>`: run every pipeline until SIGINT/SIGTERM, or until
//! bounded sources are exhausted; serve the admin API while they run, and
//! on SIGHUP read the config again and reload plugins whose settings
//! changed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminConfig, AdminError, AdminServer};
use crate::config::{Config, LogFormat};
use crate::pipeline::PipelineStats;
use crate::plugin::{PluginRegistry, ReloadOutcome, ReloadTrigger};
use crate::runtime::Runtime;

/// Arguments of `weir run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The config file (TOML).
    pub config: PathBuf,
    /// Log format; overrides `host.log_format`.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Seconds between progress lines on stderr (0 = none); overrides
    /// `host.progress_interval_s`. Default: 5 on a terminal, else none.
    #[arg(long)]
    pub progress: Option<u64>,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How long the exporter may take at exit to send the spans still buffered.
const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Run the pipelines of `args.config`. With JSON logs, an error that stops
/// the run is logged as one JSON line too (not as text on stderr).
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // An explicit `--log-format json` holds from the first line on, so that
    // even a config that cannot be loaded is reported as JSON.
    let early = args.log_format.map(|f| match f {
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    });
    if let Some(format) = early {
        crate::logging::init(format);
    }
    let result = run_logged(args);
    match result {
        Err(err) if crate::logging::is_json() && !super::output::is_broken_pipe(&err) => {
            tracing::error!(error = %format!("{err:#}"), "weir run failed");
            Ok(ExitCode::FAILURE)
        }
        other => other,
    }
}

fn run_logged(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (config, config_dir) = super::validate::load_for_run(&args.config)?;
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.host.log_format,
    };
    crate::logging::init(format);
    let tracing_guard = crate::telemetry::init(&config.host.tracing)?;
    let progress = args.progress.or(config.host.progress_interval_s).unwrap_or(
        if std::io::stderr().is_terminal() {
            5
        } else {
            0
        },
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(run_config(config, config_dir, progress, args.config));
    // Send the spans of the last batches before the process exits.
    if let Some(guard) = tracing_guard {
        guard.shutdown(TRACE_FLUSH_TIMEOUT);
    }
    result
}

async fn run_config(
    config: Config,
    config_dir: PathBuf,
    progress_s: u64,
    config_path: PathBuf,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Install the metrics recorder before anything records.
    if config.host.admin.enabled {
        let _ = crate::metrics::prometheus();
    }
    let runtime = Runtime::build(&config, &config_dir)
        .await
        .context("cannot start the pipelines")?;
    let stats = runtime.stats();
    tracing::info!(pipelines = stats.len(), "running");

    let shutdown = CancellationToken::new();
    let admin = if config.host.admin.enabled {
        match AdminServer::bind(&config.host.admin, runtime.admin_state()).await {
            Ok(server) => {
                tracing::info!("admin API on http://{}", server.local_addr());
                Some(tokio::spawn(server.serve(shutdown.clone())))
            }
            // The default port taken (another weir on this machine): run
            // without the admin API rather than not at all. An address set
            // in the config must be served.
            Err(AdminError::Bind { addr, error }) if addr == AdminConfig::default().listen => {
                tracing::warn!(%addr, %error, "admin API not started: its default address is taken; set [host.admin] listen");
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let reloader = spawn_sighup_reload(
        config_path,
        Arc::clone(runtime.registry()),
        config.clone(),
        shutdown.clone(),
    );
    let mut run = tokio::spawn(runtime.run(shutdown.clone()));
    let progress = spawn_progress(stats.clone(), progress_s, shutdown.clone());
    let timeout = Duration::from_millis(config.host.shutdown_timeout_ms);

    let result = tokio::select! {
        r = &mut run => r,
        signal = shutdown_signal() => {
            tracing::info!("{signal} received: draining in-flight batches (up to {timeout:?}); send it again to exit at once");
            shutdown.cancel();
            tokio::select! {
                r = &mut run => r,
                _ = tokio::time::sleep(timeout) => {
                    print_summary(&stats, started);
                    anyhow::bail!("shutdown timed out after {timeout:?}; events not yet committed will be read again on the next start");
                }
                again = shutdown_signal() => {
                    print_summary(&stats, started);
                    anyhow::bail!("{again} received again; exiting without waiting (events not yet committed will be read again)");
                }
            }
        }
    };
    shutdown.cancel();
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(r) = reloader {
        r.abort();
    }
    if let Some(a) = admin {
        match a.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "admin API stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "admin API task failed"),
            Ok(Ok(())) => {}
        }
    }
    print_summary(&stats, started);
    result.context("the pipelines task panicked")??;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            unreachable!()
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// On SIGHUP: read the config file again and reload every plugin whose
/// file, `config`, `limits` or `grants` changed (each swaps at its next
/// batch boundary, as any reload). Everything else (sources, sinks,
/// pipelines, `[host]`, a plugin's `version_header` and `watch`, plugins
/// added or removed) needs a restart; such changes are logged.
fn spawn_sighup_reload(
    path: PathBuf,
    registry: Arc<PluginRegistry>,
    running: Config,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; config reload by signal is off");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            let mut running = running;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = hup.recv() => if got.is_none() { return },
                }
                tracing::info!(config = %path.display(), "SIGHUP received: reading the config again");
                let p = path.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || super::validate::load_for_run(&p)).await;
                match loaded {
                    Ok(Ok((config, dir))) => {
                        reload_changed_plugins(&registry, &running, &config, &dir).await;
                        running = config;
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %format!("{e:#}"), "the new config is invalid; nothing was changed");
                    }
                    Err(e) => tracing::error!(error = %e, "config reload task failed"),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, registry, running, shutdown);
        None
    }
}

/// Apply the plugin part of a re-read config; log what needs a restart.
async fn reload_changed_plugins(
    registry: &Arc<PluginRegistry>,
    old: &Config,
    new: &Config,
    dir: &Path,
) {
    // The configs have no equality of their own; their debug forms compare
    // every field (and never show the admin token).
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    for (section, changed) in [
        ("[host]", differs(&old.host, &new.host)),
        ("[sources]", differs(&old.sources, &new.sources)),
        ("[sinks]", differs(&old.sinks, &new.sinks)),
        ("[pipelines]", differs(&old.pipelines, &new.pipelines)),
        ("[lookups]", differs(&old.lookups, &new.lookups)),
    ] {
        if changed {
            tracing::warn!("{section} changed: a restart is needed to apply it");
        }
    }
    for name in registry.names() {
        let Some(plugin) = new.plugins.get(&name) else {
            tracing::warn!(plugin = %name, "plugin removed from the config: it keeps running until a restart");
            continue;
        };
        if let Some(options) = registry.options(&name)
            && (options.version_header != plugin.version_header || options.watch != plugin.watch)
        {
            tracing::warn!(plugin = %name, "`version_header` or `watch` changed: a restart is needed to apply it");
        }
        let mut spec = crate::runtime::plugin_spec(&name, plugin, dir);
        // Lookup stores are opened once per process: the plugin keeps the
        // stores granted at start (without them a plugin that looks things
        // up would be refused and rolled back).
        if let Some(current) = registry.spec(&name) {
            spec.grants.lookups = current.grants.lookups;
        }
        if old.plugins.get(&name).map(|p| &p.lookups) != Some(&plugin.lookups) {
            tracing::warn!(plugin = %name, "`lookups` changed: a restart is needed to apply it");
        }
        let reg = Arc::clone(registry);
        match tokio::task::spawn_blocking(move || reg.reload_spec(spec, ReloadTrigger::Signal))
            .await
        {
            Ok(Ok(ReloadOutcome::Reloaded { hash, .. })) => {
                tracing::info!(plugin = %name, %hash, "plugin reloaded with the new settings");
            }
            Ok(Ok(ReloadOutcome::Unchanged { .. })) => {}
            // Logged and recorded by the registry; the old version runs on.
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(plugin = %name, error = %e, "plugin reload task failed"),
        }
    }
    for name in new.plugins.keys() {
        if registry.current(name).is_none() {
            tracing::warn!(plugin = %name, "new plugin in the config: a restart is needed to run it");
        }
    }
}

fn spawn_progress(
    stats: Vec<(String, Arc<PipelineStats>)>,
    every_s: u64,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if every_s == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(every_s));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (name, s) in &stats {
                let s = s.snapshot();
                if crate::logging::is_json() {
                    tracing::info!(
                        pipeline = %name,
                        events_in = s.events_in,
                        outputs = s.outputs,
                        dropped = s.dropped,
                        failed = s.failed,
                        dead_lettered = s.dead_lettered,
                        in_flight_events = s.in_flight_events,
                        "progress"
                    );
                    continue;
                }
                super::output::stderr_line(&format!(
                    "[{name}] in {} out {} dropped {} failed {} dead-lettered {} in-flight {}",
                    s.events_in,
                    s.outputs,
                    s.dropped,
                    s.failed,
                    s.dead_lettered,
                    s.in_flight_events
                ));
            }
        }
    }))
}

fn print_summary(stats: &[(String, Arc<PipelineStats>)], started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    for (name, s) in stats {
        let snap = s.snapshot();
        let per_sink: Vec<String> = s
            .outputs_per_sink()
            .into_iter()
            .map(|(sink, n)| format!("{sink}={n}"))
            .collect();
        if crate::logging::is_json() {
            tracing::info!(
                pipeline = %name,
                events_in = snap.events_in,
                dropped = snap.dropped,
                failed = snap.failed,
                dead_lettered = snap.dead_lettered,
                outputs = snap.outputs,
                outputs_per_sink = ?per_sink,
                seconds = secs,
                "pipeline summary"
            );
            continue;
        }
        let per_sink = per_sink.join(" ");
        super::output::stderr_line(&format!(
            "pipeline {name}: in {} | dropped {} | failed {} | dead-lettered {} | out {} ({}) | {:.1}s",
            snap.events_in,
            snap.dropped,
            snap.failed,
            snap.dead_lettered,
            snap.outputs,
            if per_sink.is_empty() {
                "none".to_owned()
            } else {
                per_sink
            },
            secs
        ));
    }
}
