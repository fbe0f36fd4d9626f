//! The packed batch format of the Weir plugin contract (`wit/0.2.0/plugin.wit`;
//! the layout is the same in 0.1.0, `wit/0.1.0/transform.wit`).
//!
//! A batch of events crosses into a plugin as one byte buffer and the
//! outcomes come back as one byte buffer; this crate is the single
//! implementation of both layouts, used by the host (which encodes batches
//! and decodes outcomes from untrusted plugins) and by the SDK (which
//! decodes batches without copying and encodes outcomes into a reused
//! buffer).
//!
//! - [`Event`], [`Output`], [`Outcome`]: owned values, as the host holds them.
//! - [`BatchReader`] / [`EventRef`]: zero-copy views of an encoded batch.
//! - [`OutcomeWriter`]: appends outcomes to a buffer.
//! - [`encode_batch`] / [`decode_outcomes`]: the host's half.

mod read;
mod types;
mod write;

pub use read::{BatchReader, DecodeError, EventRef, HeaderIter, decode_batch, decode_outcomes};
pub use types::{Event, Header, Op, Outcome, Output};
pub use write::{OutcomeWriter, OutputFields, encode_batch, encode_outcomes};

/// The WIT package this crate implements.
pub const PACKAGE: &str = "weir:transform";
/// The contract version the SDK builds (its packed layout is also that of
/// 0.1.0, which the host still runs).
pub const CONTRACT_VERSION: &str = "0.2.0";
/// The name under which a packed plugin exports the `plugin` interface.
pub const PLUGIN_EXPORT: &str = "weir:transform/plugin@0.2.0";
/// The name under which the host provides the `host` interface.
pub const HOST_IMPORT: &str = "weir:transform/host@0.2.0";

/// First word of an encoded batch ("WWB1").
pub const BATCH_MAGIC: u32 = 0x3142_5757;
/// First word of an encoded outcome list ("WWO1").
pub const OUTCOMES_MAGIC: u32 = 0x314f_5757;

pub(crate) mod flags {
    pub const EVENT_KEY: u8 = 1;
    pub const EVENT_VALUE: u8 = 2;
    pub const EVENT_OLD_VALUE: u8 = 4;

    pub const OUTPUT_ROUTE: u8 = 1;
    pub const OUTPUT_KEY: u8 = 2;
    pub const OUTPUT_VALUE: u8 = 4;
    pub const OUTPUT_TTL: u8 = 8;

    pub const TAG_EMIT: u8 = 0;
    pub const TAG_DROP: u8 = 1;
    pub const TAG_FAIL: u8 = 2;
}

/// Fixed part of an encoded event: flags, op, reserved, timestamp, five lengths.
pub(crate) const EVENT_FIXED: usize = 1 + 1 + 2 + 8 + 4 * 5;
/// Fixed part of an encoded output: flags, op, reserved, ttl, four lengths.
pub(crate) const OUTPUT_FIXED: usize = 1 + 1 + 2 + 4 + 4 * 4;

#[cfg(test)]
mod tests;
