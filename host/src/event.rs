//! The values that flow through a pipeline. They are defined once, in
//! `weir-contract`, because the same values cross the plugin boundary.

pub use weir_contract::{Event, Header, Op, Outcome, Output};
