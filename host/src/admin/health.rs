//! Readiness: every pipeline running and not stalled (see
//! [`PipelineStats::stall_reason`]), its source connected
//! ([`DynSource::check`]) and every sink it writes to healthy
//! ([`Sink::check`](crate::sink::Sink::check)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use crate::pipeline::{NamedSink, PipelineStats};
use crate::source::DynSource;

/// How long one `check` may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a pipeline is in its life.
#[derive(Debug, Default)]
pub struct RunState(AtomicU8);

const BUILT: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;
const FAILED: u8 = 3;

impl RunState {
    /// The pipeline task started.
    pub fn set_running(&self) {
        self.0.store(RUNNING, Ordering::Release);
    }

    /// The pipeline task ended, cleanly or not.
    pub fn set_stopped(&self, ok: bool) {
        self.0
            .store(if ok { STOPPED } else { FAILED }, Ordering::Release);
    }

    /// `built`, `running`, `stopped` or `failed`.
    pub fn name(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            BUILT => "built",
            RUNNING => "running",
            STOPPED => "stopped",
            _ => "failed",
        }
    }

    fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) == RUNNING
    }
}

/// What readiness looks at for one pipeline.
#[derive(Clone)]
pub struct PipelineHealth {
    /// Pipeline name.
    pub name: String,
    /// Source name.
    pub source_name: String,
    /// The pipeline's source.
    pub source: Arc<dyn DynSource>,
    /// Every sink it can write to (default route, routes, dead letters).
    pub sinks: Vec<NamedSink>,
    /// Whether its task runs.
    pub state: Arc<RunState>,
    /// Its counters and stall detector.
    pub stats: Arc<PipelineStats>,
}

impl std::fmt::Debug for PipelineHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHealth")
            .field("name", &self.name)
            .field("source", &self.source_name)
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Source or sink name.
    pub name: String,
    /// Whether it answered in time without error.
    pub ok: bool,
    /// What was wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Readiness of one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReadiness {
    /// Pipeline name.
    pub name: String,
    /// `built`, `running`, `stalled`, `stopped` or `failed`.
    pub state: &'static str,
    /// Why the pipeline is stalled (work waiting, nothing committed for
    /// `host.stall_after_ms`), while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
    /// The source's check.
    pub source: CheckResult,
    /// Each sink's check.
    pub sinks: Vec<CheckResult>,
    /// Running, source and sinks all fine.
    pub ready: bool,
}

/// The answer of `GET /health/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Every pipeline ready (and there is at least one).
    pub ready: bool,
    /// Per pipeline.
    pub pipelines: Vec<PipelineReadiness>,
}

async fn timed<E: std::fmt::Display>(
    name: &str,
    check: impl Future<Output = Result<(), E>>,
) -> CheckResult {
    let (ok, error) = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (
            false,
            Some(crate::secrets::redact(&e.to_string()).into_owned()),
        ),
        Err(_) => (false, Some(format!("no answer within {CHECK_TIMEOUT:?}"))),
    };
    CheckResult {
        name: name.to_owned(),
        ok,
        error,
    }
}

async fn check_pipeline(p: &PipelineHealth) -> PipelineReadiness {
    let source = timed(&p.source_name, p.source.check());
    let sinks = join_all(p.sinks.iter().map(|s| timed(&s.name, s.sink.check())));
    let (source, sinks) = tokio::join!(source, sinks);
    let stalled = p
        .stats
        .stall_reason()
        .filter(|_| p.state.is_running())
        .map(|r| crate::secrets::redact(&r).into_owned());
    let ready =
        p.state.is_running() && stalled.is_none() && source.ok && sinks.iter().all(|s| s.ok);
    PipelineReadiness {
        name: p.name.clone(),
        state: if stalled.is_some() {
            "stalled"
        } else {
            p.state.name()
        },
        stalled,
        source,
        sinks,
        ready,
    }
}

/// Check every pipeline, concurrently.
pub async fn readiness(pipelines: &[PipelineHealth]) -> Readiness {
    let pipelines = join_all(pipelines.iter().map(check_pipeline)).await;
    Readiness {
        ready: !pipelines.is_empty() && pipelines.iter().all(|p| p.ready),
        pipelines,
    }
}
