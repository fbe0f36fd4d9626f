//! Redis / Valkey sink: command templates (`SET`, `HSET`, `XADD`, `SADD`,
//! `ZINCRBY`, `PFADD`, `INCRBY`, `INCRBYFLOAT`, `EXPIRE`, `DEL`) rendered
//! per output and pipelined per batch.
//!
//! - [`config`]: the typed settings and their validation.
//! - [`template`]: `session:{value.session_id}`-style templates.
//! - [`sink`]: the connection and the write path.

pub mod config;
pub mod sink;
pub mod template;

pub use config::RedisSinkConfig;
pub use sink::{RedisSink, RedisSinkError};
