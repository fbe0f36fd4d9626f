//! `weir run <config>`: run every pipeline until SIGINT/SIGTERM, or until
//! bounded sources are exhausted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat};
use crate::pipeline::PipelineStats;
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

/// Set up logging once: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Run the pipelines of `args.config`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (config, config_dir) = super::validate::load_for_run(&args.config)?;
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.host.log_format,
    };
    init_logging(format);
    let progress = args
        .progress
        .or(config.host.progress_interval_s)
        .unwrap_or(if std::io::stderr().is_terminal() { 5 } else { 0 });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_config(config, config_dir, progress))
}

async fn run_config(config: Config, config_dir: PathBuf, progress_s: u64) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let runtime = Runtime::build(&config, &config_dir)
        .await
        .context("cannot start the pipelines")?;
    let stats = runtime.stats();
    tracing::info!(pipelines = stats.len(), "running");

    let shutdown = CancellationToken::new();
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
                eprintln!(
                    "[{name}] in {} out {} dropped {} failed {} dead-lettered {} in-flight {}",
                    s.events_in, s.outputs, s.dropped, s.failed, s.dead_lettered, s.in_flight_events
                );
            }
        }
    }))
}

fn print_summary(stats: &[(String, Arc<PipelineStats>)], started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    for (name, s) in stats {
        let snap = s.snapshot();
        let per_sink = s
            .outputs_per_sink()
            .into_iter()
            .map(|(sink, n)| format!("{sink}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!(
            "pipeline {name}: in {} | dropped {} | failed {} | dead-lettered {} | out {} ({}) | {:.1}s",
            snap.events_in,
            snap.dropped,
            snap.failed,
            snap.dead_lettered,
            snap.outputs,
            if per_sink.is_empty() { "none".to_owned() } else { per_sink },
            secs
        );
    }
}
