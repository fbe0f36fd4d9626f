//! What a plugin file is: the header check (WebAssembly at all? core module
//! or component?), the contract check (which `weir:transform` version it
//! exports), and [`ComponentInfo`], the report `weir plugin inspect` prints.

use std::fmt;

use serde::Serialize;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;
use weir_contract::{CONTRACT_VERSION, PACKAGE};

use super::error::PluginErrorKind;

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

/// The version of `PACKAGE/plugin` that `component` exports, if any.
fn exported_contract(component: &Component, engine: &wasmtime::Engine) -> Option<String> {
    let ty = component.component_type();
    let prefix = format!("{PACKAGE}/plugin@");
    ty.exports(engine)
        .find_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_owned))
}

/// Check that `component` implements the contract this host speaks.
pub(crate) fn check_contract(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<(), PluginErrorKind> {
    match exported_contract(component, engine) {
        Some(version) if version == CONTRACT_VERSION => {}
        Some(found) => return Err(PluginErrorKind::ContractVersion { found }),
        None => return Err(PluginErrorKind::NotAPlugin),
    }
    // A `host` import of another version would fail to link with a less
    // helpful message; name the version instead.
    let ty = component.component_type();
    let prefix = format!("{PACKAGE}/host@");
    for (name, _) in ty.imports(engine) {
        if let Some(found) = name.strip_prefix(&prefix)
            && found != CONTRACT_VERSION
        {
            return Err(PluginErrorKind::ContractVersion {
                found: found.to_owned(),
            });
        }
    }
    Ok(())
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
    /// The `weir:transform` version the component exports, if any.
    pub contract_version: Option<String>,
    /// Whether this host can run it.
    pub compatible: bool,
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
        let contract_version = exported_contract(component, engine);
        ComponentInfo {
            sha256,
            size_bytes,
            compatible: check_contract(component, engine).is_ok(),
            contract_version,
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
        match &self.contract_version {
            Some(v) if self.compatible => writeln!(f, "contract: {PACKAGE}@{v}")?,
            Some(v) => writeln!(
                f,
                "contract: {PACKAGE}@{v} (this host supports {PACKAGE}@{CONTRACT_VERSION})"
            )?,
            None => writeln!(f, "contract: none (does not export {PACKAGE}/plugin)")?,
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
