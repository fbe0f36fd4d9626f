//! Which world of the contract a component implements, found from its
//! component type (its exports and imports), never from its file name.
//!
//! The host runs three kinds of component through the same engine:
//!
//! | exports                              | kind   | version |
//! |--------------------------------------|--------|---------|
//! | `weir:transform/plugin@0.1.0`        | packed | 0.1.0   |
//! | `weir:transform/plugin@0.2.0`        | packed | 0.2.0   |
//! | `weir:transform/typed-plugin@0.2.0`  | typed  | 0.2.0   |
//!
//! Imports of `weir:transform/state@0.2.0` and `lookup@0.2.0` are
//! recorded as [`Capabilities`] and checked against the plugin's
//! [`PluginGrants`] at load ([`Capabilities::check`]), so a component
//! that needs a grant it lacks is refused before it runs, with its name.
//! An export of `timers@0.2.0` is recorded and otherwise harmless.

use std::fmt;

use serde::Serialize;
use wasmtime::component::Component;
use weir_contract::PACKAGE;

use super::PluginGrants;
use super::error::PluginErrorKind;

/// The contract versions and worlds this host runs, as error messages and
/// `weir plugin inspect` name them.
pub const SUPPORTED: &str = "weir:transform@0.1.0 (world `transform`) and \
                             weir:transform@0.2.0 (worlds `transform` and `typed`)";

/// How a batch crosses the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorldKind {
    /// One byte buffer each way (`plugin`): the Rust SDK's fast path.
    Packed,
    /// `list<event>` in, `list<outcome>` out (`typed-plugin`): no codec.
    Typed,
}

/// A contract version this host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    /// `weir:transform@0.1.0`: packed only.
    V0_1,
    /// `weir:transform@0.2.0`: packed or typed, with state and lookups.
    V0_2,
}

impl ContractVersion {
    /// The semver of the WIT package.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }

    fn parse(version: &str) -> Option<ContractVersion> {
        match version {
            "0.1.0" => Some(ContractVersion::V0_1),
            "0.2.0" => Some(ContractVersion::V0_2),
            _ => None,
        }
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host imports beyond `host` a component asks for, each of which
/// needs a grant in the plugin's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Imports `weir:transform/state@0.2.0`.
    pub state: bool,
    /// Imports `weir:transform/lookup@0.2.0`.
    pub lookup: bool,
}

impl Capabilities {
    /// Refuse an import the plugin's config does not grant.
    ///
    /// No config can grant `state` yet: the host does not implement it,
    /// so a component importing it is refused here, at load, rather than
    /// failing on its first call. `lookup` needs at least one store granted.
    pub(crate) fn check(&self, grants: &PluginGrants) -> Result<(), PluginErrorKind> {
        if self.state {
            return Err(PluginErrorKind::NotGranted {
                import: format!("{PACKAGE}/state@0.2.0"),
                grant: "state",
            });
        }
        if self.lookup && grants.lookups.is_empty() {
            return Err(PluginErrorKind::LookupsNotGranted(format!(
                "{PACKAGE}/lookup@0.2.0"
            )));
        }
        Ok(())
    }
}

/// What [`detect`] found a component to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedWorld {
    /// Packed or typed.
    pub kind: WorldKind,
    /// The contract version of its plugin export.
    pub version: ContractVersion,
    /// What it imports beyond `host`.
    pub capabilities: Capabilities,
    /// Whether it exports `weir:transform/timers@0.2.0`.
    pub timers: bool,
}

impl DetectedWorld {
    /// The name of the smallest WIT world of its version that has what the
    /// component imports: `transform`, `typed`, `typed-state`, ...
    pub fn world_name(&self) -> &'static str {
        let Capabilities { state, lookup } = self.capabilities;
        match (self.kind, state, lookup) {
            (WorldKind::Packed, false, false) => "transform",
            (WorldKind::Packed, true, false) => "transform-state",
            (WorldKind::Packed, false, true) => "transform-lookup",
            (WorldKind::Packed, true, true) => "transform-state-lookup",
            (WorldKind::Typed, false, false) => "typed",
            (WorldKind::Typed, true, false) => "typed-state",
            (WorldKind::Typed, false, true) => "typed-lookup",
            (WorldKind::Typed, true, true) => "typed-state-lookup",
        }
    }
}

/// An interface name of the contract's package split into interface and
/// version: `weir:transform/plugin@0.2.0` is `("plugin", "0.2.0")`.
fn contract_interface(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(PACKAGE)?
        .strip_prefix('/')?
        .split_once('@')
}

/// Find which world `component` implements and what it imports.
pub(crate) fn detect(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<DetectedWorld, PluginErrorKind> {
    let ty = component.component_type();
    let mut found: Vec<(WorldKind, ContractVersion)> = Vec::new();
    let mut unknown_version = None;
    let mut timers = false;
    for (name, _) in ty.exports(engine) {
        let Some((interface, version)) = contract_interface(name) else {
            continue;
        };
        let kind = match interface {
            "plugin" => WorldKind::Packed,
            "typed-plugin" => WorldKind::Typed,
            "timers" => {
                timers = true;
                continue;
            }
            _ => continue,
        };
        match ContractVersion::parse(version) {
            // 0.1.0 has no typed world.
            Some(ContractVersion::V0_1) if kind == WorldKind::Typed => {
                unknown_version = Some(version.to_owned());
            }
            Some(v) => found.push((kind, v)),
            None => unknown_version = Some(version.to_owned()),
        }
    }
    let (kind, version) = match found[..] {
        [one] => one,
        [] => {
            return Err(match unknown_version {
                Some(found) => PluginErrorKind::ContractVersion { found },
                None => PluginErrorKind::NotAPlugin,
            });
        }
        _ => {
            let exports = found
                .iter()
                .map(|(k, v)| format!("{PACKAGE}/{}@{v}", export_interface(*k)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PluginErrorKind::SeveralWorlds(exports));
        }
    };
    let mut capabilities = Capabilities::default();
    for (name, _) in ty.imports(engine) {
        let Some((interface, imported)) = contract_interface(name) else {
            continue;
        };
        if imported != version.as_str() {
            return Err(PluginErrorKind::MixedVersions {
                import: name.to_owned(),
                export: format!("{PACKAGE}/{}@{version}", export_interface(kind)),
            });
        }
        match (version, interface) {
            (_, "host") | (ContractVersion::V0_2, "types") => {}
            (ContractVersion::V0_2, "state") => capabilities.state = true,
            (ContractVersion::V0_2, "lookup") => capabilities.lookup = true,
            _ => return Err(PluginErrorKind::UnknownImport(name.to_owned())),
        }
    }
    Ok(DetectedWorld {
        kind,
        version,
        capabilities,
        timers: timers && version == ContractVersion::V0_2,
    })
}

/// The interface a world of `kind` exports.
fn export_interface(kind: WorldKind) -> &'static str {
    match kind {
        WorldKind::Packed => "plugin",
        WorldKind::Typed => "typed-plugin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_interfaces_are_split_at_the_version() {
        assert_eq!(
            contract_interface("weir:transform/typed-plugin@0.2.0"),
            Some(("typed-plugin", "0.2.0"))
        );
        assert_eq!(contract_interface("weir:transformx/plugin@0.2.0"), None);
        assert_eq!(contract_interface("wasi:io/streams@0.2.6"), None);
    }

    #[test]
    fn world_names_follow_the_imports() {
        let world = |kind, state, lookup| DetectedWorld {
            kind,
            version: ContractVersion::V0_2,
            capabilities: Capabilities { state, lookup },
            timers: false,
        };
        assert_eq!(
            world(WorldKind::Packed, false, false).world_name(),
            "transform"
        );
        assert_eq!(
            world(WorldKind::Typed, true, false).world_name(),
            "typed-state"
        );
        assert_eq!(
            world(WorldKind::Typed, true, true).world_name(),
            "typed-state-lookup"
        );
    }

    #[test]
    fn ungranted_imports_are_refused_naming_the_interface() {
        let none = PluginGrants::default();
        let state = Capabilities {
            state: true,
            lookup: false,
        };
        assert_eq!(
            state.check(&none).unwrap_err().to_string(),
            "imports weir:transform/state@0.2.0, but its config grants no state \
             (this version of weir cannot grant it yet)"
        );
        let lookup = Capabilities {
            state: false,
            lookup: true,
        };
        assert_eq!(
            lookup.check(&none).unwrap_err().to_string(),
            "imports weir:transform/lookup@0.2.0, but its config grants no lookups \
             (set `lookups = [\"STORE\"]` in its [plugins.NAME] table)"
        );
        assert!(Capabilities::default().check(&none).is_ok());
    }
}
