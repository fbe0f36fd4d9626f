//! Weir example plugin `enrich`: join each JSON event with the record a
//! lookup store (`[lookups.NAME]`, granted with `[plugins.NAME] lookups =
//! ["NAME"]`) holds under one of the event's fields.
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `store` | yes | the lookup store to ask |
//! | `key` | yes | dotted path of the field whose text is the lookup key (a string's content, or the JSON text of a number or bool) |
//! | `into` | no | dotted path where the record is written (default `profile`; objects on the way are created); not with `merge` |
//! | `fields` | no | comma-separated list: copy only these top-level fields of the record (which must then be a JSON object) |
//! | `merge` | no | `true`: instead of `into`, merge the record's fields (a JSON object) into the event's top level; event fields win |
//! | `overwrite` | no | with `merge`: `true` lets record fields replace event fields of the same name (default `false`) |
//! | `on_missing` | no | no record for the key: `pass` (default, event unchanged), `drop`, `fail` (reason names the key), `default` |
//! | `default` | with `on_missing = default` | JSON text used as the record when none is found (`null`, `{"plan":"free"}`) |
//! | `on_invalid` | no | value not JSON (or not an object where `merge` needs one), key field absent, `null`, an object or an array, or `into` not writable: `fail` (default), `drop`, `pass` |
//!
//! A found record is written as JSON, or as a string if it is not JSON;
//! `fields` and `merge` need a JSON object, and any other record fails the
//! event (reason naming the key). Events without a value (tombstones,
//! deletes) pass unchanged. The output keeps the event's key, op and
//! headers; only the value changes.
//!
//! Every key of a batch is fetched in one round trip per batch, before the
//! first event (`prefetch`). A lookup the host refuses (store not granted,
//! a key the store cannot use) fails the event with the host's reason. A
//! store that is down never reaches the plugin as a miss: the host aborts
//! the call and runs the batch again later (unless the store says
//! `on_error = "miss"`), so `on_missing` only ever sees keys the store
//! answered "absent" for.
//!
//! ```text
//! weir plugin test --from weir.toml --plugin enrich --input events.jsonl
//! ```
//!
//! (`--from` grants the plugin the stores its `[plugins.NAME]` names.)
//! ```

use weir_sdk::lookup::{self, Prefetch};
use weir_sdk::{Config, Event, Outcome, Output, Transform, json, serde_json};

/// Where a found record goes.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// At this dotted path.
    Into(String),
    /// Its fields into the event's top level.
    Merge { overwrite: bool },
}

/// What happens to an event whose key has no record.
#[derive(Debug, Clone, PartialEq)]
enum OnMissing {
    Pass,
    Drop,
    Fail,
    /// Use this record (already projected by `fields`).
    Default(json::Value),
}

/// What happens to an event that cannot be enriched.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnInvalid {
    Fail,
    Drop,
    Pass,
}

/// The enrich plugin.
#[derive(Debug)]
pub struct Enrich {
    store: String,
    key: String,
    target: Target,
    fields: Option<Vec<String>>,
    on_missing: OnMissing,
    on_invalid: OnInvalid,
}

const KNOWN: &[&str] = &[
    "store",
    "key",
    "into",
    "fields",
    "merge",
    "overwrite",
    "on_missing",
    "default",
    "on_invalid",
];

fn not_empty<'c>(config: &'c Config, key: &str) -> Result<Option<&'c str>, String> {
    match config.get(key) {
        Some(v) if v.trim().is_empty() => Err(format!("config `{key}`: must not be empty")),
        other => Ok(other),
    }
}

/// The lookup key of `value`: the text of the field at `path`.
fn key_text(value: &json::Value, path: &str) -> Result<String, String> {
    match json::get(value, path) {
        Some(json::Value::String(s)) => Ok(s.clone()),
        Some(v @ (json::Value::Number(_) | json::Value::Bool(_))) => Ok(v.to_string()),
        Some(json::Value::Null) => Err(format!("key field `{path}` is null")),
        Some(json::Value::Object(_)) => Err(format!("key field `{path}` is an object")),
        Some(json::Value::Array(_)) => Err(format!("key field `{path}` is an array")),
        None => Err(format!("no key field `{path}`")),
    }
}

impl Transform for Enrich {
    const PREFETCH: bool = true;

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(KNOWN, &[])?;
        let store = not_empty(config, "store")?
            .ok_or("config `store`: required but not set")?
            .to_owned();
        let key = not_empty(config, "key")?
            .ok_or("config `key`: required but not set")?
            .to_owned();
        let merge = config.bool("merge", false)?;
        let overwrite = config.get_as::<bool>("overwrite")?;
        let into = not_empty(config, "into")?;
        let target = if merge {
            if into.is_some() {
                return Err(
                    "config `into`: not with `merge = true` (the record's fields go to the top level)"
                        .to_owned(),
                );
            }
            Target::Merge {
                overwrite: overwrite.unwrap_or(false),
            }
        } else {
            if overwrite.is_some() {
                return Err("config `overwrite`: only with `merge = true`".to_owned());
            }
            Target::Into(into.unwrap_or("profile").to_owned())
        };
        let fields = if config.contains("fields") {
            let fields = config.list("fields")?;
            if fields.is_empty() {
                return Err("config `fields`: names no field".to_owned());
            }
            Some(fields)
        } else {
            None
        };
        let mut plugin = Enrich {
            store,
            key,
            target,
            fields,
            on_missing: OnMissing::Pass,
            on_invalid: match config.choice("on_invalid", &["fail", "drop", "pass"], "fail")? {
                "drop" => OnInvalid::Drop,
                "pass" => OnInvalid::Pass,
                _ => OnInvalid::Fail,
            },
        };
        let on_missing =
            config.choice("on_missing", &["pass", "drop", "fail", "default"], "pass")?;
        plugin.on_missing = match (on_missing, config.get("default")) {
            ("default", None) => {
                return Err("config `default`: required with `on_missing = default`".to_owned());
            }
            ("default", Some(text)) => {
                let record: json::Value = serde_json::from_str(text)
                    .map_err(|e| format!("config `default`: not JSON: {e}"))?;
                OnMissing::Default(
                    plugin
                        .shape(record)
                        .map_err(|why| format!("config `default`: {why}"))?,
                )
            }
            (_, Some(_)) => {
                return Err("config `default`: only with `on_missing = default`".to_owned());
            }
            ("drop", None) => OnMissing::Drop,
            ("fail", None) => OnMissing::Fail,
            _ => OnMissing::Pass,
        };
        Ok(plugin)
    }

    fn prefetch(&self, event: &Event<'_>, keys: &mut Prefetch) {
        if event.value().is_none() {
            return;
        }
        if let Ok(value) = event.json()
            && let Ok(key) = key_text(&value, &self.key)
        {
            keys.key(&self.store, key);
        }
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        // A tombstone goes on as a delete of its key.
        if event.value().is_none() {
            return Outcome::pass(event);
        }
        let mut value = match event.json() {
            Ok(v) => v,
            Err(e) => return self.invalid(event, e),
        };
        if matches!(self.target, Target::Merge { .. }) && !value.is_object() {
            return self.invalid(
                event,
                "event value is not a JSON object, cannot merge into it",
            );
        }
        let key = match key_text(&value, &self.key) {
            Ok(k) => k,
            Err(why) => return self.invalid(event, why),
        };
        // `Err` is a refusal (not granted, bad key). An outage never gets
        // here: the host aborts the call and retries the batch.
        let record = match lookup::get(&self.store, key.as_bytes()) {
            Err(e) => return Outcome::fail(format!("enrich: {e}")),
            Ok(Some(bytes)) => match self.shape(parse_record(&bytes)) {
                Ok(record) => record,
                Err(why) => {
                    return Outcome::fail(format!(
                        "enrich: record for key `{key}` in store `{}` {why}",
                        self.store
                    ));
                }
            },
            Ok(None) => match &self.on_missing {
                OnMissing::Pass => return Outcome::pass(event),
                OnMissing::Drop => return Outcome::Drop,
                OnMissing::Fail => {
                    return Outcome::fail(format!(
                        "enrich: no record for key `{key}` in store `{}`",
                        self.store
                    ));
                }
                OnMissing::Default(record) => record.clone(),
            },
        };
        match self.write(&mut value, record) {
            Ok(()) => Outcome::emit(Output::from_event(event).value(value.to_string())),
            Err(why) => self.invalid(event, why),
        }
    }
}

/// A stored value as JSON, or as a string if it is not JSON.
fn parse_record(bytes: &[u8]) -> json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl Enrich {
    /// The record as it is written: projected onto `fields`, and checked to
    /// be an object where `fields` or `merge` needs one.
    fn shape(&self, record: json::Value) -> Result<json::Value, String> {
        let needs_object = self.fields.is_some() || matches!(self.target, Target::Merge { .. });
        let json::Value::Object(mut all) = record else {
            return if needs_object {
                Err("is not a JSON object".to_owned())
            } else {
                Ok(record)
            };
        };
        let Some(fields) = &self.fields else {
            return Ok(json::Value::Object(all));
        };
        let mut picked = json::Map::new();
        for name in fields {
            if let Some(v) = all.remove(name) {
                picked.insert(name.clone(), v);
            }
        }
        Ok(json::Value::Object(picked))
    }

    /// Put `record` into the event's `value`.
    fn write(&self, value: &mut json::Value, record: json::Value) -> Result<(), String> {
        match &self.target {
            Target::Into(path) => json::set(value, path, record).map_err(|e| e.to_string()),
            Target::Merge { overwrite } => {
                let (json::Value::Object(event), json::Value::Object(record)) = (value, record)
                else {
                    return Err("event value is not a JSON object, cannot merge into it".to_owned());
                };
                for (name, v) in record {
                    if *overwrite || !event.contains_key(&name) {
                        event.insert(name, v);
                    }
                }
                Ok(())
            }
        }
    }

    fn invalid(&self, event: &Event<'_>, why: impl std::fmt::Display) -> Outcome {
        match self.on_invalid {
            OnInvalid::Fail => Outcome::fail(format!("enrich: {why}")),
            OnInvalid::Drop => Outcome::Drop,
            OnInvalid::Pass => Outcome::pass(event),
        }
    }
}

weir_sdk::export!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, Header, Op, OwnedEvent, OwnedOutcome};

    const ADA: &str = r#"{"name":"Ada","plan":"gold","country":"FR"}"#;

    /// A harness over store `profiles` holding `u1` = [`ADA`].
    fn harness(config: &[(&str, &str)]) -> Harness<Enrich> {
        let base = [("store", "profiles"), ("key", "user")];
        Harness::<Enrich>::new(base.iter().chain(config).copied())
            .unwrap()
            .with_lookup("profiles", "u1", ADA)
    }

    fn refused(config: &[(&str, &str)]) -> String {
        Harness::<Enrich>::new(config.iter().copied()).unwrap_err()
    }

    fn fail(reason: &str) -> OwnedOutcome {
        OwnedOutcome::Fail(reason.to_owned())
    }

    #[test]
    fn a_hit_is_written_into_a_nested_path_keeping_key_op_and_headers() {
        let mut h = harness(&[("key", "user.id"), ("into", "meta.enriched.profile")]);
        let ev = OwnedEvent {
            key: Some("k1".into()),
            op: Op::Insert,
            headers: vec![Header::new("trace", "abc")],
            ..testing::event(json!({"user": {"id": "u1"}, "meta": {"source": "web"}}))
        };
        let out = h.run_one(ev);
        let o = &testing::outputs(&out)[0];
        assert_eq!(o.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(o.op, Op::Insert);
        assert_eq!(o.headers, [Header::new("trace", "abc")]);
        assert_eq!(o.route, None);
        assert_eq!(
            testing::json_of(o),
            json!({
                "user": {"id": "u1"},
                "meta": {"source": "web", "enriched": {"profile": {"name": "Ada", "plan": "gold", "country": "FR"}}},
            })
        );
        // The default `into` is `profile`.
        let mut h = harness(&[]);
        let out = h.run_json([json!({"user": "u1"})]);
        assert_eq!(testing::emitted_json(&out[0])["profile"]["name"], "Ada");
    }

    #[test]
    fn fields_copies_only_the_listed_fields() {
        let mut h = harness(&[("fields", "plan, country, absent")]);
        let out = h.run_json([json!({"user": "u1"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u1", "profile": {"plan": "gold", "country": "FR"}})
        );
        // A record that is not an object cannot be projected.
        let mut h = harness(&[("fields", "plan")]).with_lookup("profiles", "u2", "[1,2]");
        assert_eq!(
            h.run_json([json!({"user": "u2"})])[0],
            fail("enrich: record for key `u2` in store `profiles` is not a JSON object")
        );
    }

    #[test]
    fn merge_keeps_event_fields() {
        let mut h = harness(&[("merge", "true")]);
        let out = h.run_json([json!({"user": "u1", "name": "ada_l"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u1", "name": "ada_l", "plan": "gold", "country": "FR"})
        );
        let mut h = harness(&[("merge", "true"), ("fields", "name, plan")]);
        let out = h.run_json([json!({"user": "u1"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u1", "name": "Ada", "plan": "gold"})
        );
    }

    #[test]
    fn merge_with_overwrite_lets_record_fields_win() {
        let mut h = harness(&[("merge", "true"), ("overwrite", "true")]);
        let out = h.run_json([json!({"user": "u1", "name": "ada_l", "plan": "free"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u1", "name": "Ada", "plan": "gold", "country": "FR"})
        );
        // A record that is not an object cannot be merged.
        let mut h = harness(&[("merge", "true")]).with_lookup("profiles", "u3", "plain text");
        assert_eq!(
            h.run_json([json!({"user": "u3"})])[0],
            fail("enrich: record for key `u3` in store `profiles` is not a JSON object")
        );
    }

    #[test]
    fn on_missing_pass_leaves_the_event_unchanged() {
        let mut h = harness(&[]);
        let ev = OwnedEvent {
            key: Some("k9".into()),
            ..testing::raw_event(br#"{"user":"u9","x":1}"#)
        };
        let out = h.run_one(ev.clone());
        let o = &testing::outputs(&out)[0];
        assert_eq!((&o.value, &o.key), (&ev.value, &ev.key));
    }

    #[test]
    fn on_missing_drop_drops_the_event() {
        let mut h = harness(&[("on_missing", "drop")]);
        let out = h.run_json([json!({"user": "u9"}), json!({"user": "u1"})]);
        assert_eq!(out[0], OwnedOutcome::Drop);
        assert_eq!(testing::emitted_json(&out[1])["profile"]["plan"], "gold");
    }

    #[test]
    fn on_missing_fail_names_the_key() {
        let mut h = harness(&[("on_missing", "fail")]);
        assert_eq!(
            h.run_json([json!({"user": "u9"})])[0],
            fail("enrich: no record for key `u9` in store `profiles`")
        );
    }

    #[test]
    fn on_missing_default_puts_the_default_in() {
        let mut h = harness(&[("on_missing", "default"), ("default", r#"{"plan":"free"}"#)]);
        let out = h.run_json([json!({"user": "u9"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u9", "profile": {"plan": "free"}})
        );
        let mut h = harness(&[("on_missing", "default"), ("default", "null")]);
        let out = h.run_json([json!({"user": "u9"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u9", "profile": null})
        );
        // The default is a record like any other: projected, merged.
        let mut h = harness(&[
            ("on_missing", "default"),
            ("default", r#"{"plan":"free","tier":0}"#),
            ("merge", "true"),
            ("fields", "plan"),
        ]);
        let out = h.run_json([json!({"user": "u9"})]);
        assert_eq!(
            testing::emitted_json(&out[0]),
            json!({"user": "u9", "plan": "free"})
        );
    }

    #[test]
    fn on_invalid_fail_is_the_default_and_names_the_problem() {
        let mut h = harness(&[("into", "meta.profile")]);
        let out = h.run(&[
            testing::raw_event(b"not json"),
            testing::event(json!({"name": "x"})),
            testing::event(json!({"user": null})),
            testing::event(json!({"user": {"id": "u1"}})),
            testing::event(json!({"user": ["u1"]})),
            testing::event(json!({"user": "u1", "meta": 5})),
        ]);
        assert_eq!(
            out,
            [
                fail("enrich: event value is not valid JSON: expected ident at line 1 column 2"),
                fail("enrich: no key field `user`"),
                fail("enrich: key field `user` is null"),
                fail("enrich: key field `user` is an object"),
                fail("enrich: key field `user` is an array"),
                fail("enrich: cannot set `meta.profile`: `meta` is not an object"),
            ]
        );
        let mut h = harness(&[("merge", "true")]);
        assert_eq!(
            h.run_json([json!(["u1"])])[0],
            fail("enrich: event value is not a JSON object, cannot merge into it")
        );
    }

    #[test]
    fn on_invalid_drop_drops_the_event() {
        let mut h = harness(&[("on_invalid", "drop")]);
        let out = h.run(&[
            testing::raw_event(b"{"),
            testing::event(json!({"user": null})),
            testing::event(json!({"user": "u1"})),
        ]);
        assert_eq!(out[..2], [OwnedOutcome::Drop, OwnedOutcome::Drop]);
        assert_eq!(testing::emitted_json(&out[2])["profile"]["name"], "Ada");
    }

    #[test]
    fn on_invalid_pass_passes_the_event_unchanged() {
        let mut h = harness(&[("on_invalid", "pass")]);
        let events = [
            testing::raw_event(b"{"),
            testing::event(json!({"user": {"id": "u1"}})),
        ];
        let out = h.run(&events);
        for (ev, o) in events.iter().zip(&out) {
            assert_eq!(testing::outputs(o)[0].value, ev.value);
        }
    }

    #[test]
    fn tombstones_pass_as_deletes() {
        let mut h = harness(&[("on_invalid", "fail")]);
        let tombstone = OwnedEvent {
            key: Some("k1".into()),
            op: Op::Delete,
            ..OwnedEvent::default()
        };
        let out = h.run_one(tombstone);
        let o = &testing::outputs(&out)[0];
        assert_eq!((o.op, o.value.as_deref()), (Op::Delete, None));
        assert_eq!(o.key.as_deref(), Some(&b"k1"[..]));
    }

    #[test]
    fn number_and_bool_keys_are_looked_up_by_their_json_text() {
        let mut h = harness(&[("key", "id")])
            .with_lookup("profiles", "42", r#"{"plan":"silver"}"#)
            .with_lookup("profiles", "1.5", r#"{"plan":"bronze"}"#)
            .with_lookup("profiles", "true", r#"{"plan":"flag"}"#);
        let out = h.run_json([json!({"id": 42}), json!({"id": 1.5}), json!({"id": true})]);
        let plans: Vec<_> = out
            .iter()
            .map(|o| testing::emitted_json(o)["profile"]["plan"].clone())
            .collect();
        assert_eq!(plans, [json!("silver"), json!("bronze"), json!("flag")]);
    }

    #[test]
    fn a_found_value_that_is_not_json_is_put_in_as_a_string() {
        let mut h = harness(&[])
            .with_lookup("profiles", "u2", "gold member")
            .with_lookup("profiles", "u3", b"caf\xe9".to_vec())
            .with_lookup("profiles", "u4", "7");
        let out = h.run_json([
            json!({"user": "u2"}),
            json!({"user": "u3"}),
            json!({"user": "u4"}),
        ]);
        assert_eq!(testing::emitted_json(&out[0])["profile"], "gold member");
        assert_eq!(testing::emitted_json(&out[1])["profile"], "caf\u{fffd}");
        assert_eq!(testing::emitted_json(&out[2])["profile"], 7);
    }

    #[test]
    fn a_batch_costs_one_round_trip() {
        let mut h = harness(&[("on_missing", "fail")]);
        for i in 0..50 {
            h = h.with_lookup("profiles", format!("u{i}"), format!(r#"{{"n":{i}}}"#));
        }
        let events: Vec<_> = (0..200)
            .map(|i| {
                if i % 7 == 0 {
                    json!({"nokey": i})
                } else {
                    json!({"user": format!("u{}", i % 50)})
                }
            })
            .collect();
        let before = lookup::round_trips();
        let out = h.run_json(events);
        assert_eq!(lookup::round_trips() - before, 1);
        assert_eq!(testing::emitted_json(&out[1])["profile"], json!({"n": 1}));
        assert_eq!(
            testing::emitted_json(&out[199])["profile"],
            json!({"n": 49})
        );
        assert_eq!(out[0], fail("enrich: no key field `user`"));
        // The next batch asks again: answers are not kept across batches.
        h.run_json([json!({"user": "u1"})]);
        assert_eq!(lookup::round_trips() - before, 2);
    }

    #[test]
    fn a_store_not_granted_fails_the_event_with_the_hosts_reason() {
        let mut h = Harness::<Enrich>::new([("store", "ghost"), ("key", "user")]).unwrap();
        let out = h.run_json([json!({"user": "u1"}), json!({"user": "u2"})]);
        let reason = fail("enrich: lookup store `ghost` is not granted to this plugin");
        assert_eq!(out, [reason.clone(), reason]);
        // Granted but empty: a miss, not a refusal.
        let mut h = Harness::<Enrich>::new([("store", "empty"), ("key", "user")])
            .unwrap()
            .with_store("empty");
        let out = h.run_json([json!({"user": "u1"})]);
        assert_eq!(testing::emitted_json(&out[0]), json!({"user": "u1"}));
    }

    #[test]
    fn an_unknown_config_key_is_refused_at_init() {
        let err = refused(&[("store", "p"), ("key", "user"), ("on_mising", "drop")]);
        assert_eq!(
            err,
            "config `on_mising`: unknown key (known: store, key, into, fields, merge, \
             overwrite, on_missing, default, on_invalid)"
        );
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let base = [("store", "p"), ("key", "user")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut cfg = base.to_vec();
            cfg.extend_from_slice(extra);
            refused(&cfg)
        };
        assert_eq!(
            refused(&[("key", "u")]),
            "config `store`: required but not set"
        );
        assert_eq!(
            refused(&[("store", "p")]),
            "config `key`: required but not set"
        );
        assert_eq!(
            refused(&[("store", " "), ("key", "u")]),
            "config `store`: must not be empty"
        );
        assert_eq!(
            with(&[("merge", "true"), ("into", "x")]),
            "config `into`: not with `merge = true` (the record's fields go to the top level)"
        );
        assert_eq!(
            with(&[("overwrite", "true")]),
            "config `overwrite`: only with `merge = true`"
        );
        assert_eq!(
            with(&[("fields", " , ")]),
            "config `fields`: names no field"
        );
        assert_eq!(
            with(&[("on_missing", "default")]),
            "config `default`: required with `on_missing = default`"
        );
        assert_eq!(
            with(&[("default", "{}")]),
            "config `default`: only with `on_missing = default`"
        );
        assert!(
            with(&[("on_missing", "default"), ("default", "{oops")])
                .starts_with("config `default`: not JSON: ")
        );
        assert_eq!(
            with(&[
                ("on_missing", "default"),
                ("default", "1"),
                ("merge", "true")
            ]),
            "config `default`: is not a JSON object"
        );
        assert_eq!(
            with(&[("on_missing", "skip")]),
            "config `on_missing`: expected one of pass, drop, fail, default, got \"skip\""
        );
        assert_eq!(
            with(&[("on_invalid", "skip")]),
            "config `on_invalid`: expected one of fail, drop, pass, got \"skip\""
        );
        assert_eq!(
            with(&[("merge", "maybe")]),
            "config `merge`: expected true or false, got \"maybe\""
        );
    }
}
