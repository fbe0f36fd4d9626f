//! What the source and sink registries tell validation: which `type`s this
//! build supports, which exist but were compiled out (and by which cargo
//! feature), so `weir validate` can say "compiled without feature
//! `mongodb`" instead of just "unknown type".
//!
//! The [`connector_registry!`] macro declares both registries (in
//! `sink/mod.rs` and `source/mod.rs`) and emits one [`Registry`] for each
//! (`SinkConfig::REGISTRY`, `SourceConfig::REGISTRY`); adding a connector
//! line to a registry updates it with no change here. It lives below
//! `config`, `source` and `sink` so that all three can use it without
//! importing each other.

/// Declares a connector registry: the config enum whose `type = "..."`
/// picks a connector and whose other keys are that connector's settings,
/// its [`Registry`] for validation, the offline `validate` step and the
/// `build` that connects what passed it ([`Validated`]).
///
/// ```text
/// connector_registry! {
///     /// Doc of the enum.
///     SinkConfig, "sink", SinkContext => Arc<dyn Sink>, SinkError;
///     File => file::FileSinkConfig,
///     #[cfg(feature = "kafka")]
///     Kafka => kafka::KafkaSinkConfig,
/// }
/// ```
macro_rules! connector_registry {
    (
        $(#[$doc:meta])*
        $enum:ident, $kind:literal, $ctx:ty => $built:ty, $err:ty;
        $( $(#[$meta:meta])* $variant:ident => $config:ty ),* $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum $enum {
            $( $(#[$meta])* #[allow(missing_docs)] $variant($config), )*
        }

        impl $enum {
            /// Every type of the registry, compiled into this build or not,
            /// for the messages of config validation.
            pub const REGISTRY: $crate::registry::Registry =
                $crate::registry::Registry {
                    kind: $kind,
                    all: &[ $( $crate::registry::Entry {
                        variant: stringify!($variant),
                        cfg: stringify!($($meta),*),
                    }, )* ],
                    compiled: &[ $( $(#[$meta])* stringify!($variant), )* ],
                };

            /// The connector of type `type_name` from its settings (the
            /// table without its `type` key), or `None` if this build has no
            /// such type. Config validation uses this instead of the tagged
            /// form so that errors keep the position of the key at fault.
            pub fn from_settings<'de, D: serde::Deserializer<'de>>(
                type_name: &str,
                settings: D,
            ) -> Option<Result<Self, D::Error>> {
                $( $(#[$meta])* {
                    if type_name == $crate::registry::type_name(stringify!($variant)) {
                        return Some(
                            <$config as serde::Deserialize>::deserialize(settings)
                                .map($enum::$variant),
                        );
                    }
                } )*
                let _ = (type_name, settings);
                None
            }

            /// The offline check of this connector's settings (the one
            /// `weir validate` reports and `weir run` passes before it
            /// connects): the settings, now buildable, or every problem as
            /// `(key segments under the connector's table, message)`.
            pub fn validate(
                &self,
                name: &str,
                config_dir: &std::path::Path,
            ) -> Result<$crate::registry::Validated<Self>, Vec<(Vec<String>, String)>> {
                let problems = self.offline_problems(name, config_dir);
                if problems.is_empty() {
                    Ok($crate::registry::Validated(self.clone()))
                } else {
                    Err(problems)
                }
            }
        }

        impl $crate::registry::Validated<$enum> {
            /// Connect it. Only settings that passed [`$enum::validate`]
            /// get here, so a connector's build never sees a config that
            /// `weir validate` would refuse.
            pub async fn build(&self, ctx: &$ctx) -> Result<$built, $err> {
                // `*` and `ref`: a build without connectors of this kind
                // has an empty enum, matched with no arms.
                match *self.get() {
                    $( $(#[$meta])* $enum::$variant(ref c) => c.build(ctx).await, )*
                }
            }
        }
    };
}
pub(crate) use connector_registry;

/// Connector settings that passed their offline checks. Only a registry's
/// `validate` makes one (the field is private to the crate's registry
/// macro), and only this type has `build`, so connecting without the
/// checks `weir validate` runs does not compile.
#[derive(Debug, Clone)]
pub struct Validated<T>(pub(crate) T);

impl<T> Validated<T> {
    /// The settings.
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// One line of a connector registry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The enum variant name (`DynamodbStreams`).
    pub variant: &'static str,
    /// The attributes of the registry line as text (`cfg(feature =
    /// "dynamodb")`), empty when the connector is always built.
    pub cfg: &'static str,
}

/// Every connector of one kind (sources or sinks).
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    /// `source` or `sink`, for messages.
    pub kind: &'static str,
    /// Every registry line, compiled in or not.
    pub all: &'static [Entry],
    /// Variant names of the connectors compiled into this build.
    pub compiled: &'static [&'static str],
}

impl Registry {
    /// The `type = "..."` names this build supports, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.compiled.iter().map(|v| type_name(v)).collect();
        types.sort();
        types
    }

    /// Whether this build supports `type_name`.
    pub fn supports(&self, name: &str) -> bool {
        self.compiled.iter().any(|v| type_name(v) == name)
    }

    /// The cargo feature that would add `type_name` to this build, if it is
    /// a connector of the registry that was compiled out.
    pub fn missing_feature(&self, name: &str) -> Option<String> {
        if self.supports(name) {
            return None;
        }
        let entry = self.all.iter().find(|e| type_name(e.variant) == name)?;
        Some(feature_of(entry.cfg).unwrap_or_else(|| name.to_owned()))
    }

    /// The message for a `type` this build does not support.
    pub fn unsupported_message(&self, name: &str) -> String {
        let supported = self
            .types()
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let supported = if supported.is_empty() {
            "none".to_owned()
        } else {
            supported
        };
        match self.missing_feature(name) {
            Some(feature) => format!(
                "{} type `{name}` is not available: weir was compiled without feature `{feature}` (this build supports: {supported})",
                self.kind
            ),
            None => format!(
                "unknown {} type `{name}` (this build supports: {supported})",
                self.kind
            ),
        }
    }
}

/// The `type` name serde gives a variant under `rename_all = "snake_case"`:
/// an underscore before every uppercase letter but the first, all lowercase
/// (`DynamodbStreams` -> `dynamodb_streams`). This is serde's own rule.
pub fn type_name(variant: &str) -> String {
    let mut name = String::with_capacity(variant.len() + 4);
    for (i, ch) in variant.char_indices() {
        if i > 0 && ch.is_uppercase() {
            name.push('_');
        }
        name.push(ch.to_ascii_lowercase());
    }
    name
}

/// The feature named in a registry line's `cfg(feature = "x")`.
fn feature_of(cfg: &str) -> Option<String> {
    let compact: String = cfg.chars().filter(|c| !c.is_whitespace()).collect();
    let start = compact.find("feature=\"")? + "feature=\"".len();
    let len = compact[start..].find('"')?;
    Some(compact[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: Registry = Registry {
        kind: "sink",
        all: &[
            Entry {
                variant: "File",
                cfg: "",
            },
            Entry {
                variant: "DynamodbStreams",
                cfg: "cfg(feature = \"dynamodb\")",
            },
        ],
        compiled: &["File"],
    };

    #[test]
    fn type_names_follow_serde_snake_case() {
        assert_eq!(type_name("File"), "file");
        assert_eq!(type_name("DynamodbStreams"), "dynamodb_streams");
    }

    #[test]
    fn compiled_out_connectors_name_their_feature() {
        assert!(REG.supports("file"));
        assert_eq!(
            REG.missing_feature("dynamodb_streams").as_deref(),
            Some("dynamodb")
        );
        assert_eq!(REG.missing_feature("nope"), None);
        assert_eq!(
            REG.unsupported_message("dynamodb_streams"),
            "sink type `dynamodb_streams` is not available: weir was compiled without feature `dynamodb` (this build supports: `file`)"
        );
        assert_eq!(
            REG.unsupported_message("mongo"),
            "unknown sink type `mongo` (this build supports: `file`)"
        );
    }
}
