//! Write Weir stream-transform plugins in Rust.
//!
//! A plugin is a type implementing [`Transform`] plus one line,
//! [`export!`]. The SDK hides the Wasm contract (the packed world `transform`
//! of `weir:transform@0.2.0`, `wit/0.2.0/plugin.wit`): it
//! receives each batch as one packed buffer, hands your `process` one
//! [`Event`] at a time — borrowed from that buffer, nothing copied — and
//! packs the [`Outcome`]s into a buffer it reuses from batch to batch.
//!
//! ```
//! use weir_sdk::{json, Config, Event, JsonError, Outcome, Output, Transform};
//!
//! /// Drops events whose `field` equals `value`; tags the others.
//! struct DropMatching {
//!     field: String,
//!     value: String,
//! }
//!
//! impl Transform for DropMatching {
//!     fn init(config: &Config) -> Result<Self, String> {
//!         config.deny_unknown(&["field", "value"], &[])?;
//!         Ok(DropMatching {
//!             field: config.required("field")?.to_owned(),
//!             value: config.get_or("value", String::from("purchase"))?,
//!         })
//!     }
//!
//!     fn process(&mut self, event: &Event<'_>) -> Outcome {
//!         let mut value = match event.json() {
//!             Ok(v) => v,
//!             // A delete (tombstone) has no value: pass it on, so the sink
//!             // deletes the key too, instead of dead-lettering it.
//!             Err(JsonError::NoValue) => return Outcome::pass(event),
//!             Err(e) => return Outcome::fail(e),
//!         };
//!         if json::get(&value, &self.field).map(json::to_text).as_deref() == Some(&*self.value) {
//!             return Outcome::Drop;
//!         }
//!         if let Err(e) = json::set(&mut value, "meta.seen_at", event.timestamp_ms().into()) {
//!             return Outcome::fail(e);
//!         }
//!         Outcome::emit(Output::json(&value).key_of(event).route("mongo"))
//!     }
//! }
//!
//! // Generates the Wasm exports when built for wasm32; nothing natively.
//! weir_sdk::export!(DropMatching);
//!
//! // Native test through the real batch loop:
//! use weir_sdk::serde_json::json;
//! use weir_sdk::testing::{self, Harness, OwnedOutcome};
//!
//! let mut h = Harness::<DropMatching>::new([("field", "type")]).unwrap();
//! let out = h.run_json([json!({"type": "purchase"}), json!({"type": "view"})]);
//! assert_eq!(out[0], OwnedOutcome::Drop);
//! assert_eq!(testing::emitted_json(&out[1]), json!({"type": "view", "meta": {"seen_at": 0}}));
//! assert_eq!(testing::routes(&out[1]), [Some("mongo")]);
//!
//! // A tombstone passes through as a delete of its key.
//! let tombstone = testing::OwnedEvent { key: Some("k1".into()), value: None, op: weir_sdk::Op::Delete, ..testing::event(json!(null)) };
//! let out = h.run_one(tombstone);
//! assert_eq!(testing::outputs(&out)[0].op, weir_sdk::Op::Delete);
//! assert_eq!(testing::outputs(&out)[0].key.as_deref(), Some(&b"k1"[..]));
//!
//! let err = Harness::<DropMatching>::new([("feild", "type")]).unwrap_err();
//! assert_eq!(err, "config `feild`: unknown key (known: field, value)");
//! ```
//!
//! Build the plugin as a component with
//! `cargo build --release --target wasm32-wasip2` (crate type `cdylib`),
//! and try it with `weir plugin test target/wasm32-wasip2/release/<name>.wasm`.
//! The plugin author's guide (`docs/plugin-authors.md`) walks through it.
//!
//! `cargo doc -p weir-sdk --open` renders this reference (in a project made
//! by `weir plugin new`, `cargo doc -p weir-sdk --open` there too).
//!
//! Modules:
//! - [`config`]: the [`Config`] handed to `init`, with typed getters.
//! - [`event`] / [`outcome`]: what `process` reads and returns.
//! - [`json`]: get / set / remove JSON fields by dotted path.
//! - [`log`]: `info!`, `warn!`, ... through the host's log.
//! - [`testing`]: run a transform natively through the real batch loop.
//! - [`alloc`]: the allocator plugins use on Wasm, and why.

extern crate self as weir_sdk;

pub mod alloc;
pub mod config;
pub mod event;
pub mod json;
pub mod log;
pub mod lookup;
pub mod outcome;
mod runtime;
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    //! Bindings generated from `wit/0.2.0`, world `transform-lookup` (Wasm
    //! only). A component imports only the interfaces it calls, so a plugin
    //! that never looks anything up does not import `lookup` and needs no
    //! grant.
    wit_bindgen::generate!({
        path: "../wit/0.2.0",
        world: "transform-lookup",
        pub_export_macro: true,
        default_bindings_module: "weir_sdk::bindings",
        runtime_path: "weir_sdk::__private::wit_bindgen::rt",
    });
}

pub use config::{Config, ConfigError};
pub use event::{Event, JsonError, Op};
pub use outcome::{Outcome, Output};
pub use serde_json;

/// A stream transform: built once per plugin instance from its config, then
/// called once per event.
///
/// The instance lives across batches, so `self` may keep state (counters,
/// caches); the host may run several instances and rebuild one after a
/// trap, so state is per instance and best effort.
pub trait Transform: Sized + 'static {
    /// Build the transform from its config. An `Err` refuses the config:
    /// the host does not load the plugin and reports the message.
    fn init(config: &Config) -> Result<Self, String>;

    /// Decide what happens to one event: emit outputs, drop it, or fail it
    /// (it then goes to the dead-letter sink with the reason).
    fn process(&mut self, event: &Event<'_>) -> Outcome;

    /// Whether the SDK calls [`Transform::prefetch`] before each batch.
    /// Set it to `true` in a plugin that implements `prefetch`.
    const PREFETCH: bool = false;

    /// Name the lookups `process` will make for `event`
    /// (`keys.key("users", id)`). With [`Transform::PREFETCH`] set, the
    /// SDK calls this for every event of a batch before the first
    /// `process`, asks each store for all the batch's keys in one round
    /// trip, and [`lookup::get`] answers those keys from it.
    fn prefetch(&self, _event: &Event<'_>, _keys: &mut lookup::Prefetch) {}
}

/// Export a [`Transform`] as the plugin of this crate.
///
/// On `wasm32` this generates the component exports (`init`, `process`)
/// and installs the SDK's allocator (see [`alloc`]); natively it only
/// checks that the type implements [`Transform`], so the crate builds and
/// unit-tests with plain `cargo test`. Use it once per crate.
///
/// `export!(MyType, allocator = system)` keeps Rust's default allocator.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        $crate::export!($plugin, allocator = sdk);
    };
    ($plugin:ty, allocator = sdk) => {
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static __WEIR_ALLOCATOR: $crate::alloc::SizeClassAllocator =
            $crate::alloc::SizeClassAllocator::new();
        $crate::export!($plugin, allocator = system);
    };
    ($plugin:ty, allocator = system) => {
        const _: () = {
            const fn __weir_assert_transform<T: $crate::Transform>() {}
            __weir_assert_transform::<$plugin>();
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __WEIR_RUNTIME: ::core::cell::RefCell<$crate::__private::Runtime<$plugin>> =
                    ::core::cell::RefCell::new(::core::default::Default::default());
            }

            struct __WeirExport;

            impl $crate::__private::Guest for __WeirExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    let config = $crate::Config::from_pairs(config);
                    __WEIR_RUNTIME.with(|rt| rt.borrow_mut().init(&config))
                }

                fn process(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                    __WEIR_RUNTIME.with(|rt| rt.borrow_mut().process(&batch))
                }
            }

    $crate::bindings::export!(__WeirExport with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    //! Used by the expansion of [`crate::export!`]; not a public API.
    pub use crate::runtime::Runtime;

    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::exports::weir::transform::plugin::Guest;
    #[cfg(target_arch = "wasm32")]
    pub use wit_bindgen;
}
