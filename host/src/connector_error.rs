//! What a connector's own error type owes its caller.
//!
//! Every source and sink has its own error enum (`RedisSinkError`,
//! `KafkaSourceError`, ...) with the driver's error as its `#[source]`.
//! [`crate::sink::SinkError`] and [`crate::source::SourceError`] carry it
//! boxed, sorted by [`ConnectorError::is_transient`], so the pipeline can
//! decide on retries without knowing the connector and a caller that does
//! know it can downcast to the connector's type and walk to the cause.
//!
//! A connector's message never names the connector itself: the pipeline,
//! the runtime and the health check add "sink `NAME`:" once.

/// A connector's error, boxed: what [`crate::sink::SinkError`] and
/// [`crate::source::SourceError`] hold.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of one connector, which knows whether retrying may help.
pub trait ConnectorError: std::error::Error + Send + Sync + 'static {
    /// Whether repeating the same call may succeed (connection lost,
    /// timeout, throttling) rather than fail the same way again (bad
    /// credentials, missing table, bad config).
    fn is_transient(&self) -> bool;
}
