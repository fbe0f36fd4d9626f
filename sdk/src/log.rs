//! Logging through the host: `weir_sdk::log::info!("...")` writes a line
//! to the host's log, tagged with the plugin's name (the `host.log` import).
//! The host rate-limits plugin logs, so do not log per event on a hot path.
//!
//! Natively (unit tests) lines are kept per thread, readable with
//! `take_captured()`, and echoed to stderr (which `cargo test` captures).

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Write one line at `level`. The macros below call this.
#[cfg(target_arch = "wasm32")]
pub fn write(level: Level, message: &str) {
    use crate::bindings::weir::transform::host::{self, Level as L};
    let level = match level {
        Level::Trace => L::Trace,
        Level::Debug => L::Debug,
        Level::Info => L::Info,
        Level::Warn => L::Warn,
        Level::Error => L::Error,
    };
    host::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static CAPTURED: std::cell::RefCell<Vec<(Level, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Write one line at `level`. The macros below call this.
#[cfg(not(target_arch = "wasm32"))]
pub fn write(level: Level, message: &str) {
    eprintln!("[plugin {}] {message}", level.as_str());
    CAPTURED.with(|c| c.borrow_mut().push((level, message.to_owned())));
}

/// The lines logged on this thread since the last call (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn take_captured() -> Vec<(Level, String)> {
    CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_trace {
    ($($arg:tt)+) => { $crate::__weir_log!(Trace, $($arg)+) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_debug {
    ($($arg:tt)+) => { $crate::__weir_log!(Debug, $($arg)+) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_info {
    ($($arg:tt)+) => { $crate::__weir_log!(Info, $($arg)+) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_warn {
    ($($arg:tt)+) => { $crate::__weir_log!(Warn, $($arg)+) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __weir_log_error {
    ($($arg:tt)+) => { $crate::__weir_log!(Error, $($arg)+) };
}

pub use crate::__weir_log_debug as debug;
pub use crate::__weir_log_error as error;
pub use crate::__weir_log_info as info;
pub use crate::__weir_log_trace as trace;
pub use crate::__weir_log_warn as warn;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn macros_format_and_capture() {
        let _ = take_captured();
        info!("batch of {} events", 3);
        crate::log::warn!("slow");
        assert_eq!(
            take_captured(),
            [
                (Level::Info, "batch of 3 events".to_owned()),
                (Level::Warn, "slow".to_owned())
            ]
        );
        assert!(take_captured().is_empty());
    }
}
