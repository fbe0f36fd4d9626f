//! The Wasm engine: compile plugins (with an on-disk cache), check their
//! contract, instantiate them in a sandbox with a memory cap and a CPU
//! deadline, call them per batch, and isolate poison events.
//!
//! - [`Engine`]: one per process; wasmtime engine, linker, epoch ticker,
//!   compile cache.
//! - [`DetectedWorld`]: which world of the contract a component implements
//!   (packed 0.1.0, packed 0.2.0 or typed 0.2.0); all three run through
//!   the same limits, isolation, deadlines and reloads.
//! - [`PluginVersion`]: one loaded plugin file with its config, shared;
//!   makes [`PluginInstance`]s cheaply from an `InstancePre`.
//! - [`PluginInstance`]: a store and an instance, used by one thread at a
//!   time through the [`Transform`] trait.
//!
//! Submodules: `world` (which world a component implements, and the
//! imports it needs granted), `bindings` (the generated bindings of each
//! world, `host.log`), `typed` (events and outcomes of the typed world),
//! `cache` (compiled artifacts on disk, authenticated),
//! `limits` (memory cap, counts, epoch ticker), `wasi` (the sandbox),
//! `timers` (WASI timers bounded by the call's deadline), `stderr` (panic
//! messages), `state` (store data, `host.log`), `outputs` (caps on what
//! outcomes hold), `isolate` (bisecting a failed batch, within a budget),
//! `inspect` (header and contract checks, `weir plugin inspect`), `error`.

mod bindings;
mod cache;
mod error;
mod inspect;
mod isolate;
mod limits;
mod options;
mod outputs;
mod state;
mod stderr;
mod timers;
mod typed;
mod wasi;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, ComponentExportIndex, Func, HasSelf, Linker, ResourceTable};
use wasmtime::{Store, Trap};
use weir_contract::{Event, Outcome, decode_outcomes, encode_batch};

pub use cache::default_cache_dir;
pub use error::{EngineError, PluginError, PluginErrorKind};
pub use inspect::{ComponentInfo, ItemInfo};
pub use limits::{MAX_REASON_BYTES, bound_reason};
pub use options::{PluginGrants, PluginLimits};
pub use world::{Capabilities, ContractVersion, DetectedWorld, SUPPORTED, WorldKind};

use cache::CompileCache;
use isolate::{BatchRunner, Budget};
use limits::{MAX_COMPONENT_HANDLES, MAX_HOST_RESOURCES, MemoryLimiter, Ticker};
use outputs::OutputBudget;
use state::{HostState, PluginLog, SharedLog};
use timers::CallDeadline;

/// How the engine is set up.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Directory of the compiled-plugin cache. `None` compiles on every
    /// load; [`default_cache_dir`] is the usual choice.
    pub cache_dir: Option<PathBuf>,
}

/// The Wasm engine of a process: compiles and loads plugins.
///
/// Dropping it stops the deadline ticker once every [`PluginVersion`] made
/// by it is gone too.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    ticker: Arc<Ticker>,
    /// The log of each plugin by name, shared by all its versions and
    /// instances (one rate limit per plugin).
    logs: Mutex<BTreeMap<String, SharedLog>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Everything needed to load one plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin's name, used in errors and logs.
    pub name: String,
    /// The `.wasm` component.
    pub path: PathBuf,
    /// Passed to the plugin's `init`.
    pub config: Vec<(String, String)>,
    /// Memory cap and CPU deadline per instance.
    pub limits: PluginLimits,
    /// Capabilities beyond the default sandbox.
    pub grants: PluginGrants,
}

impl Engine {
    /// Set up wasmtime (component model, epoch interruption, no async
    /// machinery) and start the deadline ticker.
    pub fn new(options: EngineOptions) -> Result<Engine, EngineError> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Calls are synchronous: skip the per-call bookkeeping of
            // component-model concurrency.
            .concurrency_support(false)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES));
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        timers::add_to_linker(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        // `host` of both versions. The typed world imports the very `host`
        // interface of the 0.2.0 packed world (shared through `with:`), and
        // its `types` interface holds no functions.
        bindings::v1::Transform::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        bindings::packed::Transform::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        bindings::lookup::weir::transform::lookup::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| EngineError::Config(format!("{e:#}")))?;

        let cache = match options.cache_dir {
            Some(dir) => match CompileCache::new(dir.clone(), &engine) {
                Ok(cache) => Some(cache),
                Err(err) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        error = %err,
                        "cannot use the compiled-plugin cache directory; plugins will be compiled on every load"
                    );
                    None
                }
            },
            None => None,
        };
        let ticker = Arc::new(Ticker::start(engine.clone()).map_err(EngineError::Ticker)?);
        Ok(Engine {
            engine,
            linker,
            cache,
            ticker,
            logs: Mutex::new(BTreeMap::new()),
        })
    }

    /// The directory of the compiled-plugin cache, if one is in use.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.as_ref().map(CompileCache::dir)
    }

    /// Read, check and compile (or load from the cache) a plugin file and
    /// run one instance's `init`, so a refused config fails here and not on
    /// the first batch.
    pub fn load(&self, spec: &PluginSpec) -> Result<Arc<PluginVersion>, PluginError> {
        // `builtin:NAME` paths are the components embedded in the binary.
        let bytes = crate::builtin::read(&spec.path).map_err(|e| PluginError {
            plugin: spec.name.clone(),
            path: spec.path.clone(),
            kind: PluginErrorKind::Read(e),
        })?;
        self.load_bytes(spec, &bytes)
    }

    /// [`Engine::load`] of bytes already read from `spec.path`: a reload
    /// checks and hashes the bytes it read once, and these very bytes are
    /// compiled (reading the file again would compile whatever replaced it
    /// in between).
    pub fn load_bytes(
        &self,
        spec: &PluginSpec,
        bytes: &[u8],
    ) -> Result<Arc<PluginVersion>, PluginError> {
        let err = |kind| PluginError {
            plugin: spec.name.clone(),
            path: spec.path.clone(),
            kind,
        };
        let (component, hash, from_cache) = self.compile(bytes).map_err(err)?;
        let world = world::detect(&component, &self.engine).map_err(err)?;
        world.capabilities.check(&spec.grants).map_err(err)?;
        let pre = WorldPre::new(&self.linker, &component, &world).map_err(err)?;
        let log = Arc::clone(
            self.logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(spec.name.clone())
                .or_insert_with(|| Arc::new(Mutex::new(PluginLog::new(spec.name.clone())))),
        );
        let version = Arc::new(PluginVersion {
            spec: spec.clone(),
            hash,
            from_cache,
            world,
            deadline_ticks: limits::deadline_ticks(spec.limits.deadline_ms),
            init_deadline_ticks: limits::deadline_ticks(spec.limits.init_deadline_ms),
            log,
            pre,
            spare: Mutex::new(None),
            _ticker: Arc::clone(&self.ticker),
        });
        let first = version.new_live()?;
        if let Ok(mut spare) = version.spare.lock() {
            *spare = Some(first);
        }
        tracing::debug!(
            plugin = %spec.name,
            path = %spec.path.display(),
            hash = %version.hash,
            from_cache,
            world = world.world_name(),
            contract = %world.version,
            "plugin loaded"
        );
        Ok(version)
    }

    /// Describe a plugin file: contract version, exports, imports. Works
    /// on components of other contract versions too.
    pub fn inspect(&self, path: &Path) -> Result<ComponentInfo, PluginError> {
        let err = |kind| PluginError {
            plugin: path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            path: path.to_owned(),
            kind,
        };
        let bytes = crate::builtin::read(path).map_err(|e| err(PluginErrorKind::Read(e)))?;
        let (component, hash, _) = self.compile(&bytes).map_err(err)?;
        Ok(ComponentInfo::of(
            &component,
            &self.engine,
            hash,
            bytes.len() as u64,
        ))
    }

    /// Check the header, then load the compiled component from the cache
    /// or compile it (and cache it). Returns the component, the hex sha256
    /// of `bytes`, and whether it came from the cache.
    fn compile(&self, bytes: &[u8]) -> Result<(Component, String, bool), PluginErrorKind> {
        inspect::check_header(bytes)?;
        let hash = hex::encode(Sha256::digest(bytes));
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &hash))
        {
            return Ok((component, hash, true));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginErrorKind::Invalid(format!("{e:#}")))?;
        if let Some(cache) = &self.cache {
            cache.store(&hash, &component);
        }
        Ok((component, hash, false))
    }
}

/// A loaded plugin file with its config: compiled, linked and known to
/// initialise. Shared (`Arc`) by every instance made from it.
pub struct PluginVersion {
    spec: PluginSpec,
    hash: String,
    from_cache: bool,
    world: DetectedWorld,
    deadline_ticks: u64,
    init_deadline_ticks: u64,
    log: SharedLog,
    pre: WorldPre,
    /// The instance `load` initialised, handed out by the first
    /// `instantiate`.
    spare: Mutex<Option<Live>>,
    /// Keeps the epoch ticker running while this version can run.
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVersion")
            .field("name", &self.spec.name)
            .field("path", &self.spec.path)
            .field("hash", &self.hash)
            .field("from_cache", &self.from_cache)
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

/// A component linked and type-checked against the world it implements,
/// ready to make instances.
enum WorldPre {
    /// Packed, `weir:transform@0.1.0`.
    V1(bindings::v1::TransformPre<HostState>),
    /// Packed, `weir:transform@0.2.0`.
    Packed(bindings::packed::TransformPre<HostState>),
    /// Typed, `weir:transform@0.2.0`, with the index of its `process`
    /// (called through the borrowed events of `typed`).
    Typed {
        pre: bindings::typed::TypedPre<HostState>,
        process: ComponentExportIndex,
    },
}

impl WorldPre {
    fn new(
        linker: &Linker<HostState>,
        component: &Component,
        world: &DetectedWorld,
    ) -> Result<WorldPre, PluginErrorKind> {
        let link = |e: wasmtime::Error| PluginErrorKind::Link(format!("{e:#}"));
        let pre = linker.instantiate_pre(component).map_err(link)?;
        Ok(match (world.kind, world.version) {
            (WorldKind::Packed, ContractVersion::V0_1) => {
                WorldPre::V1(bindings::v1::TransformPre::new(pre).map_err(link)?)
            }
            (WorldKind::Packed, ContractVersion::V0_2) => {
                WorldPre::Packed(bindings::packed::TransformPre::new(pre).map_err(link)?)
            }
            (WorldKind::Typed, _) => {
                let process = component
                    .get_export_index(None, "weir:transform/typed-plugin@0.2.0")
                    .and_then(|i| component.get_export_index(Some(&i), "process"))
                    .ok_or_else(|| {
                        PluginErrorKind::Link("typed-plugin exports no `process`".to_owned())
                    })?;
                WorldPre::Typed {
                    pre: bindings::typed::TypedPre::new(pre).map_err(link)?,
                    process,
                }
            }
        })
    }

    fn engine(&self) -> &wasmtime::Engine {
        match self {
            WorldPre::V1(pre) => pre.engine(),
            WorldPre::Packed(pre) => pre.engine(),
            WorldPre::Typed { pre, .. } => pre.engine(),
        }
    }

    /// Instantiate in `store`.
    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            WorldPre::V1(pre) => Bindings::V1(pre.instantiate(&mut *store)?),
            WorldPre::Packed(pre) => Bindings::Packed(pre.instantiate(&mut *store)?),
            WorldPre::Typed { pre, process } => {
                let instance = pre.instance_pre().instantiate(&mut *store)?;
                let bindings = bindings::typed::Typed::new(&mut *store, &instance)?;
                let process = instance
                    .get_func(&mut *store, process)
                    .ok_or_else(|| wasmtime::format_err!("typed-plugin exports no `process`"))?;
                typed::typecheck(store, &process)?;
                Bindings::Typed { bindings, process }
            }
        })
    }
}

/// The exports of one instance, by world.
enum Bindings {
    V1(bindings::v1::Transform),
    Packed(bindings::packed::Transform),
    Typed {
        bindings: bindings::typed::Typed,
        process: Func,
    },
}

impl Bindings {
    fn call_init(
        &self,
        store: &mut Store<HostState>,
        config: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bindings::V1(b) => b.weir_transform_plugin().call_init(store, config),
            Bindings::Packed(b) => b.weir_transform_plugin().call_init(store, config),
            Bindings::Typed { bindings, .. } => bindings
                .weir_transform_typed_plugin()
                .call_init(store, config),
        }
    }
}

/// A store and the plugin instance living in it.
struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

impl PluginVersion {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Hex sha256 of the `.wasm` file this version was loaded from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// What this version was loaded from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Which world of the contract the component implements.
    pub fn world(&self) -> &DetectedWorld {
        &self.world
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// A ready instance: `init` has run with the plugin's config.
    pub fn instantiate(self: &Arc<Self>) -> Result<PluginInstance, PluginError> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.take());
        let live = match spare {
            Some(live) => live,
            None => self.new_live()?,
        };
        Ok(PluginInstance {
            version: Arc::clone(self),
            live,
            buf: Vec::new(),
            rebuilds: 0,
            shutdown: None,
        })
    }

    fn error(&self, kind: PluginErrorKind) -> PluginError {
        PluginError {
            plugin: self.spec.name.clone(),
            path: self.spec.path.clone(),
            kind,
        }
    }

    /// A new store and instance, initialised. Instantiation and `init`
    /// run under the init deadline.
    fn new_live(&self) -> Result<Live, PluginError> {
        let stderr = stderr::StderrTail::default();
        let (wasi, clock) = wasi::build_ctx(&self.spec.grants, stderr.clone());
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let state = HostState {
            wasi,
            clock,
            deadline: CallDeadline::default(),
            stderr,
            table,
            limiter: MemoryLimiter::new(self.spec.limits.memory_mib),
            log: Arc::clone(&self.log),
            lookups: self.spec.grants.lookups.clone(),
            lookup_outage: None,
        };
        let init_ms = self.spec.limits.init_deadline_ms;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_max_component_handles(MAX_COMPONENT_HANDLES);
        store
            .data_mut()
            .deadline
            .start(Duration::from_millis(init_ms));
        store.set_epoch_deadline(self.init_deadline_ticks);
        let bindings = self.pre.instantiate(&mut store).map_err(|e| {
            let cause = self.describe_failure(&store, &e, init_ms);
            self.error(PluginErrorKind::Instantiate(cause))
        })?;
        store.data_mut().limiter.reset();
        let result = bindings.call_init(&mut store, &self.spec.config);
        if store.data().deadline.hit() {
            return Err(self.error(PluginErrorKind::InitFailed(deadline_exceeded(init_ms))));
        }
        match result {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(message)) => {
                Err(self.error(PluginErrorKind::InitRefused(bound_reason(message))))
            }
            Err(e) => {
                let cause = self.describe_failure(&store, &e, init_ms);
                Err(self.error(PluginErrorKind::InitFailed(cause)))
            }
        }
    }

    /// The reason a failed call gives its event: memory cap, deadline
    /// (`deadline_ms`), stack overflow or the trap message.
    fn describe_failure(
        &self,
        store: &Store<HostState>,
        err: &wasmtime::Error,
        deadline_ms: u64,
    ) -> String {
        if store.data().limiter.exceeded {
            return format!("memory limit {} MiB exceeded", self.spec.limits.memory_mib);
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => deadline_exceeded(deadline_ms),
            Some(Trap::StackOverflow) => {
                format!("stack overflow ({})", Trap::StackOverflow)
            }
            Some(Trap::MemoryOutOfBounds) if stack_exhausted(err) => format!(
                "stack overflow ({}: the plugin's shadow stack in linear memory is exhausted by recursion)",
                Trap::MemoryOutOfBounds
            ),
            Some(trap) => match store.data().stderr.panic_message() {
                Some(panic) => format!("{trap} (plugin {panic})"),
                None => format!("{trap}"),
            },
            None => bound_reason(format!("{err:#}")),
        }
    }

    /// The budget of one batch: isolation time and outputs.
    fn budget(&self) -> Budget {
        Budget {
            failed_calls: Duration::from_millis(self.spec.limits.isolation_budget_ms),
            outputs: OutputBudget::new(&self.spec.limits),
        }
    }
}

/// The reason of a call stopped by its deadline.
fn deadline_exceeded(deadline_ms: u64) -> String {
    format!("deadline exceeded after {deadline_ms} ms")
}

/// Whether an out-of-bounds trap is a guest's shadow stack running out.
///
/// Rust (and C) guests keep large locals on a stack in linear memory that
/// grows down towards address 0; deep recursion pushes the stack pointer
/// below 0 and the next store traps as out of bounds, usually before
/// wasmtime's own call-stack limit is reached. Safe Rust does not access
/// memory out of bounds otherwise, so a trap whose backtrace is full (the
/// capture limit reached) and made of at most two functions repeating is
/// reported as the stack overflow it is.
fn stack_exhausted(err: &wasmtime::Error) -> bool {
    let Some(trace) = err.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    if frames.len() < BACKTRACE_FRAMES {
        return false;
    }
    let mut seen: Vec<u32> = Vec::with_capacity(3);
    for frame in frames {
        if !seen.contains(&frame.func_index()) {
            seen.push(frame.func_index());
            if seen.len() > 2 {
                return false;
            }
        }
    }
    true
}

/// Frames of a trap's backtrace the engine captures.
const BACKTRACE_FRAMES: usize = 20;

/// Whatever transforms a batch: a Wasm plugin instance, or a native
/// function in tests and benchmarks. The pipeline only sees this.
pub trait Transform: Send {
    /// The plugin's name, for logs and metrics.
    fn name(&self) -> &str;

    /// One outcome per event, in order.
    ///
    /// Isolation happens inside: a trap, deadline or memory cap hit on the
    /// batch discards the instance, rebuilds it (re-running `init`) and
    /// bisects the batch until the poison events are isolated; each gets
    /// `Outcome::Fail(cause)` and every other event its normal outcome.
    /// `Err` only if the plugin can no longer be instantiated, or the
    /// isolation was interrupted by the shutdown token given to
    /// [`Transform::set_shutdown`] ([`PluginErrorKind::Interrupted`]).
    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError>;

    /// Stop isolating poison events (between calls) once `shutdown` is
    /// cancelled. Transforms that do not isolate ignore it.
    fn set_shutdown(&mut self, shutdown: CancellationToken) {
        let _ = shutdown;
    }
}

/// One instance of a plugin: a store, the instance, and the reused batch
/// buffer. Runs on one thread at a time.
pub struct PluginInstance {
    version: Arc<PluginVersion>,
    live: Live,
    buf: Vec<u8>,
    rebuilds: u64,
    /// Cancelled when the host shuts down: isolation stops.
    shutdown: Option<CancellationToken>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("version", &self.version)
            .field("rebuilds", &self.rebuilds)
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    /// The version this instance runs.
    pub fn version(&self) -> &Arc<PluginVersion> {
        &self.version
    }

    /// How many times the instance was thrown away and rebuilt after a
    /// failed call.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// What the instance holds against its memory cap (every linear
    /// memory and table), in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.live.store.data().limiter.used_bytes() as u64
    }
}

/// First wait before a batch whose lookups failed is run again.
const LOOKUP_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between runs of a batch whose lookups keep failing.
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(5);

impl PluginInstance {
    /// Sleep `wait` on the plugin's thread; `true` if the host began
    /// shutting down meanwhile.
    fn wait_or_shutdown(&self, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        loop {
            if self.shutdown.as_ref().is_some_and(|s| s.is_cancelled()) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= until {
                return false;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

/// What a call that returned gave back, by world.
enum Returned {
    /// The packed outcome buffer, not yet decoded.
    Packed(Vec<u8>),
    /// The typed outcomes, converted, or why they break the contract.
    Typed(Result<Vec<Outcome>, String>),
}
use Returned::{Packed, Typed};

impl BatchRunner for PluginInstance {
    fn run(&mut self, events: &[Event]) -> Result<Vec<Outcome>, String> {
        if !matches!(self.live.bindings, Bindings::Typed { .. }) {
            encode_batch(events, &mut self.buf);
        }
        let live = &mut self.live;
        let deadline_ms = self.version.spec.limits.deadline_ms;
        let state = live.store.data_mut();
        state.limiter.reset();
        state.lookup_outage = None;
        state.deadline.start(Duration::from_millis(deadline_ms));
        live.store.set_epoch_deadline(self.version.deadline_ticks);
        let result = match &live.bindings {
            Bindings::V1(b) => b
                .weir_transform_plugin()
                .call_process(&mut live.store, &self.buf)
                .map(Packed),
            Bindings::Packed(b) => b
                .weir_transform_plugin()
                .call_process(&mut live.store, &self.buf)
                .map(Packed),
            Bindings::Typed { process, .. } => {
                match typed::process(&mut live.store, process, events) {
                    Ok(outcomes) => Ok(Typed(Ok(outcomes))),
                    Err(typed::CallError::Malformed(problem)) => Ok(Typed(Err(problem))),
                    Err(typed::CallError::Trap(e)) => Err(e),
                }
            }
        };
        if live.store.data().deadline.hit() {
            // Blocked in a timer until the deadline: as late as a loop.
            return Err(deadline_exceeded(deadline_ms));
        }
        match result {
            Ok(Packed(out)) => decode_outcomes(Bytes::from(out), events.len()).map_err(|e| {
                format!(
                    "malformed outcome buffer at byte {}: {}",
                    e.offset, e.problem
                )
            }),
            Ok(Typed(outcomes)) => {
                outcomes.map_err(|problem| format!("malformed outcomes: {problem}"))
            }
            Err(e) => Err(self.version.describe_failure(&live.store, &e, deadline_ms)),
        }
    }

    fn reset(&mut self) -> Result<(), PluginError> {
        self.live = self.version.new_live()?;
        self.rebuilds += 1;
        Ok(())
    }

    fn outage(&mut self) -> Option<PluginError> {
        let outage = self.live.store.data_mut().lookup_outage.take()?;
        Some(
            self.version
                .error(PluginErrorKind::LookupUnavailable(outage)),
        )
    }

    fn interrupted(&self) -> Option<PluginError> {
        self.shutdown
            .as_ref()
            .filter(|s| s.is_cancelled())
            .map(|_| self.version.error(PluginErrorKind::Interrupted))
    }
}

impl Transform for PluginInstance {
    fn name(&self) -> &str {
        self.version.name()
    }

    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError> {
        // A lookup store that is down fails the call, not the events: the
        // whole batch is run again, with backoff, until the store answers
        // or the host shuts down. Nothing is enriched with a made-up
        // "absent" and nothing is committed meanwhile.
        let mut backoff = LOOKUP_RETRY_FIRST;
        loop {
            let budget = self.version.budget();
            match isolate::process_isolating(self, events, budget) {
                Err(err) if matches!(err.kind, PluginErrorKind::LookupUnavailable(_)) => {
                    tracing::warn!(plugin = %self.version.name(), error = %err, retry_in_ms = backoff.as_millis() as u64, "batch will be retried");
                    self.reset()?;
                    if self.wait_or_shutdown(backoff) {
                        return Err(self.version.error(PluginErrorKind::Interrupted));
                    }
                    backoff = (backoff * 2).min(LOOKUP_RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    fn set_shutdown(&mut self, shutdown: CancellationToken) {
        self.shutdown = Some(shutdown);
    }
}
