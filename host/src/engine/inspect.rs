//! What a plugin file is: the header check (WebAssembly at all? core module
//! or component?) and [`ComponentInfo`], the report `weir plugin inspect`
//! prints (which world and contract version, which weir imports and
//! exports; the detection itself is `world`'s).

use std::fmt;

use serde::Serialize;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use weir_contract::PACKAGE;

use super::PluginGrants;
use super::error::PluginErrorKind;
use super::world::{self, SUPPORTED, WorldKind};

/// The preamble of every WebAssembly binary.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Refuse files that are not components before handing them to wasmtime,
/// with a message that says what they are instead.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), PluginErrorKind> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(PluginErrorKind::NotWasm);
    }
    // Bytes 4..8: version (u16) and layer (u16); layer 0 is a core module,
    // layer 1 a component.
    match [bytes[6], bytes[7]] {
        [0, 0] => Err(PluginErrorKind::CoreModule),
        [1, 0] => Ok(()),
        _ => Err(PluginErrorKind::NotWasm),
    }
}

/// The version of the plugin interface (`plugin` or `typed-plugin`) that
/// `component` exports, if any, whether this host speaks it or not.
fn exported_contract(component: &Component, engine: &wasmtime::Engine) -> Option<String> {
    let ty = component.component_type();
    let prefixes = [
        format!("{PACKAGE}/plugin@"),
        format!("{PACKAGE}/typed-plugin@"),
    ];
    ty.exports(engine).find_map(|(name, _)| {
        prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p.as_str()).map(str::to_owned))
    })
}

/// One import or export of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemInfo {
    /// Its name, e.g. `weir:transform/plugin@0.1.0`.
    pub name: String,
    /// `instance`, `func`, `type`, `resource`, `component` or `module`.
    pub kind: &'static str,
    /// For an instance, the functions it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
}

/// What `weir plugin inspect` reports about a plugin file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// The `weir:transform` version of the plugin interface the component
    /// exports, if any (also one this host does not speak).
    pub contract_version: Option<String>,
    /// The WIT world it implements (`transform`, `typed`, `typed-state`,
    /// ...), if it is one this host knows.
    pub world: Option<&'static str>,
    /// `packed` (one buffer each way) or `typed` (WIT records), if known.
    pub kind: Option<WorldKind>,
    /// Whether it imports `weir:transform/state`.
    pub state: bool,
    /// Whether it imports `weir:transform/lookup`.
    pub lookup: bool,
    /// Whether it exports `weir:transform/timers`.
    pub timers: bool,
    /// Whether this host can run it (with the grants a config can give).
    pub compatible: bool,
    /// Why this host cannot run it, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What the component exports.
    pub exports: Vec<ItemInfo>,
    /// What the component imports.
    pub imports: Vec<ItemInfo>,
}

fn item_info(engine: &wasmtime::Engine, name: &str, item: &ComponentItem) -> ItemInfo {
    let (kind, functions) = match item {
        ComponentItem::ComponentInstance(instance) => (
            "instance",
            instance
                .exports(engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(n, _)| n.to_owned())
                .collect(),
        ),
        ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_) => ("func", Vec::new()),
        ComponentItem::Module(_) => ("module", Vec::new()),
        ComponentItem::Component(_) => ("component", Vec::new()),
        ComponentItem::Type(_) => ("type", Vec::new()),
        ComponentItem::Resource(_) => ("resource", Vec::new()),
    };
    ItemInfo {
        name: name.to_owned(),
        kind,
        functions,
    }
}

impl ComponentInfo {
    pub(crate) fn of(
        component: &Component,
        engine: &wasmtime::Engine,
        sha256: String,
        size_bytes: u64,
    ) -> ComponentInfo {
        let ty = component.component_type();
        let detected = world::detect(component, engine);
        // What a config can grant today: no state, no lookups.
        let problem = match &detected {
            Ok(w) => w.capabilities.check(&PluginGrants::default()).err(),
            Err(e) => Some(e.clone()),
        }
        .map(|e| e.to_string());
        let has_import = |interface: &str| {
            let prefix = format!("{PACKAGE}/{interface}@");
            ty.imports(engine).any(|(n, _)| n.starts_with(&prefix))
        };
        let timers_prefix = format!("{PACKAGE}/timers@");
        let detected = detected.ok();
        ComponentInfo {
            sha256,
            size_bytes,
            contract_version: exported_contract(component, engine),
            world: detected.map(|w| w.world_name()),
            kind: detected.map(|w| w.kind),
            state: has_import("state"),
            lookup: has_import("lookup"),
            timers: ty
                .exports(engine)
                .any(|(n, _)| n.starts_with(&timers_prefix)),
            compatible: problem.is_none(),
            problem,
            exports: ty
                .exports(engine)
                .map(|(n, e)| item_info(engine, n, &e.ty))
                .collect(),
            imports: ty
                .imports(engine)
                .map(|(n, e)| item_info(engine, n, &e.ty))
                .collect(),
        }
    }
}

impl fmt::Display for ComponentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.contract_version, self.world, self.kind) {
            (Some(v), Some(world), Some(kind)) => {
                let how = match kind {
                    WorldKind::Packed => "packed: one byte buffer each way",
                    WorldKind::Typed => "typed: list<event> in, list<outcome> out",
                };
                writeln!(f, "contract: {PACKAGE}@{v}")?;
                writeln!(f, "world:    {world} ({how})")?;
            }
            (Some(v), _, _) => writeln!(
                f,
                "contract: {PACKAGE}@{v} (this host supports {SUPPORTED})"
            )?,
            (None, _, _) => writeln!(f, "contract: none (exports no {PACKAGE} plugin interface)")?,
        }
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            f,
            "weir:     state: {}, lookup: {}, timers: {}",
            yes(self.state),
            yes(self.lookup),
            yes(self.timers)
        )?;
        if let Some(problem) = &self.problem {
            writeln!(f, "refused:  {problem}")?;
        }
        writeln!(f, "sha256:   {}", self.sha256)?;
        writeln!(f, "size:     {} bytes", self.size_bytes)?;
        for (title, items) in [("exports", &self.exports), ("imports", &self.imports)] {
            writeln!(f, "{title}:")?;
            for item in items {
                if item.functions.is_empty() {
                    writeln!(f, "  {} ({})", item.name, item.kind)?;
                } else {
                    writeln!(
                        f,
                        "  {} ({}: {})",
                        item.name,
                        item.kind,
                        item.functions.join(", ")
                    )?;
                }
            }
        }
        Ok(())
    }
}
