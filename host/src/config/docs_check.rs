//! Keeps `docs/configuration.md` true: every key of every config struct
//! (asked of serde itself, so a new field cannot be forgotten) must have a
//! row in the table of its section, and every source and sink type of the
//! registry a section of its own.

use serde::de::{self, Deserializer, Visitor};

use super::{
    BatchConfig, HostConfig, PipelineConfig, PluginConfig, PluginGrants, PluginLimits, RetryConfig,
};
use crate::sink::SinkConfig;
use crate::source::SourceConfig;

const DOC: &str = include_str!("../../../docs/configuration.md");

/// A deserializer that only records the field names serde asks for.
struct FieldNames<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldNames(&mut fields));
    fields.expect("a struct")
}

/// The text of the section under the first heading containing `heading`
/// (after `after`, when given), up to the next heading of its level or
/// higher.
fn section<'a>(doc: &'a str, after: Option<&str>, heading: &str) -> &'a str {
    let start = after.map_or(0, |a| {
        doc.find(a)
            .unwrap_or_else(|| panic!("docs/configuration.md has no {a:?}"))
    });
    let rest = &doc[start..];
    let at = rest
        .lines()
        .scan(0, |pos, line| {
            let here = *pos;
            *pos += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.starts_with('#') && line.contains(heading))
        .map(|(pos, _)| pos)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading with {heading:?}"));
    let body = &rest[at..];
    let level = body.chars().take_while(|&c| c == '#').count();
    let end = body
        .lines()
        .skip(1)
        .scan(
            body.lines().next().map_or(0, |l| l.len() + 1),
            |pos, line| {
                let here = *pos;
                *pos += line.len() + 1;
                Some((here, line))
            },
        )
        .find(|(_, line)| {
            let l = line.chars().take_while(|&c| c == '#').count();
            l > 0 && l <= level
        })
        .map_or(body.len(), |(pos, _)| pos);
    &body[..end]
}

fn assert_documented(what: &str, text: &str, fields: &[&str]) {
    for field in fields {
        assert!(
            text.contains(&format!("| `{field}` |")),
            "docs/configuration.md: {what} has no row for `{field}`"
        );
    }
}

#[test]
fn every_key_of_the_core_structs_is_documented() {
    let cases: [(&str, &[&str]); 9] = [
        ("`[host]`", fields_of::<HostConfig>()),
        ("`[host.admin]`", fields_of::<crate::admin::AdminConfig>()),
        (
            "`[host.tracing]`",
            fields_of::<crate::telemetry::TracingConfig>(),
        ),
        ("`[plugins.NAME]`", fields_of::<PluginConfig>()),
        ("`limits`", fields_of::<PluginLimits>()),
        ("`grants`", fields_of::<PluginGrants>()),
        ("`[pipelines.NAME]`", fields_of::<PipelineConfig>()),
        ("`batch`", fields_of::<BatchConfig>()),
        ("`retry`", fields_of::<RetryConfig>()),
    ];
    for (heading, fields) in cases {
        assert_documented(heading, section(DOC, None, heading), fields);
    }
}

#[test]
fn every_source_and_sink_type_and_its_keys_are_documented() {
    for t in SourceConfig::REGISTRY.types() {
        let heading = format!("`type = \"{t}\"`");
        let text = section(DOC, Some("## `[sources.NAME]`"), &heading);
        let mut fields = None;
        let _ = SourceConfig::from_settings(&t, FieldNames(&mut fields));
        assert_documented(&format!("source {heading}"), text, fields.unwrap_or(&[]));
    }
    for t in SinkConfig::REGISTRY.types() {
        let heading = format!("`type = \"{t}\"`");
        let text = section(DOC, Some("## `[sinks.NAME]`"), &heading);
        let mut fields = None;
        let _ = SinkConfig::from_settings(&t, FieldNames(&mut fields));
        assert_documented(&format!("sink {heading}"), text, fields.unwrap_or(&[]));
    }
}

/// The registries (in `crate::registry`, below the connectors) print the
/// names serde's tagged enums accept, for every connector of this build.
#[test]
fn registry_type_names_are_the_ones_serde_accepts() {
    for t in SinkConfig::REGISTRY.types() {
        let err = toml::from_str::<SinkConfig>(&format!("type = \"{t}\""))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("unknown variant"), "sink type {t}: {err}");
    }
    for t in SourceConfig::REGISTRY.types() {
        let err = toml::from_str::<SourceConfig>(&format!("type = \"{t}\""))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("unknown variant"), "source type {t}: {err}");
    }
}
