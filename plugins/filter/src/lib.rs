//! Weir example plugin `filter`: drop (or keep) events by one JSON field.
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `field` | yes | dotted path of the field to test in the event value (`user.country`) |
//! | `equals` | one of these four | matches when the field's text equals this |
//! | `not_equals` | | matches when the field is absent or its text differs |
//! | `exists` | | `true`: matches when the field is present (even `null`); `false`: when absent |
//! | `in` | | comma-separated list: matches when the field's text is one of them |
//! | `action` | no | `drop` (default): drop matching events, pass the others; `keep`: pass only matching events |
//! | `on_invalid` | no | value not JSON or absent: `fail` (default, to the dead-letter sink), `drop`, or `pass` |
//!
//! A field's text is a string's content, or the JSON text of any other
//! value (`42`, `true`, `null`). Events that pass go out unchanged: value,
//! key, op and headers.
//!
//! ```text
//! weir plugin test filter.wasm --config field=event_type --config equals=heartbeat
//! weir plugin test filter.wasm --config field=country --config in=FR,DE --config action=keep
//! ```

use weir_sdk::{Config, Event, Outcome, Transform, json};

/// What the field is tested against.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Equals(String),
    NotEquals(String),
    Exists(bool),
    In(Vec<String>),
}

impl Condition {
    fn matches(&self, field: Option<&json::Value>) -> bool {
        let text = field.map(json::to_text);
        match self {
            Condition::Equals(v) => text.as_deref() == Some(v.as_str()),
            Condition::NotEquals(v) => text.as_deref() != Some(v.as_str()),
            Condition::Exists(want) => field.is_some() == *want,
            Condition::In(set) => text.is_some_and(|t| set.iter().any(|v| *v == *t)),
        }
    }
}

/// What to do with an event whose value cannot be tested.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnInvalid {
    Fail,
    Drop,
    Pass,
}

/// The filter plugin.
#[derive(Debug)]
pub struct Filter {
    field: String,
    condition: Condition,
    /// `true` for `action=keep`.
    keep_matching: bool,
    on_invalid: OnInvalid,
}

impl Transform for Filter {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(
            &[
                "field",
                "equals",
                "not_equals",
                "exists",
                "in",
                "action",
                "on_invalid",
            ],
            &[],
        )?;
        let field = config.required("field")?.to_owned();
        let mut conditions = Vec::new();
        if let Some(v) = config.get("equals") {
            conditions.push(Condition::Equals(v.to_owned()));
        }
        if let Some(v) = config.get("not_equals") {
            conditions.push(Condition::NotEquals(v.to_owned()));
        }
        if let Some(v) = config.get_as::<bool>("exists")? {
            conditions.push(Condition::Exists(v));
        }
        if config.contains("in") {
            conditions.push(Condition::In(config.list("in")?));
        }
        let condition = match conditions.len() {
            1 => conditions.remove(0),
            0 => return Err("set one of `equals`, `not_equals`, `exists`, `in`".to_owned()),
            _ => {
                return Err("set only one of `equals`, `not_equals`, `exists`, `in`".to_owned());
            }
        };
        let keep_matching = config.choice("action", &["drop", "keep"], "drop")? == "keep";
        let on_invalid = match config.choice("on_invalid", &["fail", "drop", "pass"], "fail")? {
            "drop" => OnInvalid::Drop,
            "pass" => OnInvalid::Pass,
            _ => OnInvalid::Fail,
        };
        Ok(Filter {
            field,
            condition,
            keep_matching,
            on_invalid,
        })
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        let value = match event.json() {
            Ok(v) => v,
            Err(e) => {
                return match self.on_invalid {
                    OnInvalid::Fail => Outcome::fail(format!("filter: {e}")),
                    OnInvalid::Drop => Outcome::Drop,
                    OnInvalid::Pass => Outcome::pass(event),
                };
            }
        };
        let matched = self.condition.matches(json::get(&value, &self.field));
        if matched == self.keep_matching {
            Outcome::pass(event)
        } else {
            Outcome::Drop
        }
    }
}

weir_sdk::export!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, OwnedEvent, OwnedOutcome};

    fn run(config: &[(&str, &str)], values: &[json::Value]) -> Vec<bool> {
        let mut h = Harness::<Filter>::new(config.iter().copied()).unwrap();
        h.run_json(values.iter().cloned())
            .iter()
            .map(|o| match o {
                OwnedOutcome::Emit(_) => true,
                OwnedOutcome::Drop => false,
                OwnedOutcome::Fail(r) => panic!("unexpected fail: {r}"),
            })
            .collect()
    }

    fn events() -> Vec<json::Value> {
        vec![
            json!({"event_type": "purchase", "user": {"country": "FR"}}),
            json!({"event_type": "view", "user": {"country": "DE"}}),
            json!({"event_type": "heartbeat"}),
            json!({"event_type": 42, "user": {"country": null}}),
        ]
    }

    #[test]
    fn equals_drops_matching_events() {
        let passed = run(
            &[("field", "event_type"), ("equals", "heartbeat")],
            &events(),
        );
        assert_eq!(passed, [true, true, false, true]);
        let passed = run(&[("field", "event_type"), ("equals", "42")], &events());
        assert_eq!(passed, [true, true, true, false]);
    }

    #[test]
    fn not_equals_treats_missing_as_different() {
        let passed = run(
            &[("field", "user.country"), ("not_equals", "FR")],
            &events(),
        );
        assert_eq!(passed, [true, false, false, false]);
    }

    #[test]
    fn exists_and_keep() {
        let cfg = [
            ("field", "user.country"),
            ("exists", "true"),
            ("action", "keep"),
        ];
        assert_eq!(run(&cfg, &events()), [true, true, false, true]);
        let cfg = [("field", "user.country"), ("exists", "false")];
        assert_eq!(run(&cfg, &events()), [true, true, false, true]);
    }

    #[test]
    fn in_list_with_keep() {
        let cfg = [
            ("field", "event_type"),
            ("in", "purchase, view"),
            ("action", "keep"),
        ];
        assert_eq!(run(&cfg, &events()), [true, true, false, false]);
    }

    #[test]
    fn passed_events_are_unchanged() {
        let mut h = Harness::<Filter>::new([("field", "a"), ("equals", "x")]).unwrap();
        let ev = OwnedEvent {
            key: Some("k1".into()),
            ..testing::event(json!({"a": "y", "b": [1, 2]}))
        };
        let out = h.run_one(ev.clone());
        let o = &testing::outputs(&out)[0];
        assert_eq!(o.value, ev.value);
        assert_eq!(o.key, ev.key);
        assert_eq!(o.route, None);
    }

    #[test]
    fn invalid_values_follow_on_invalid() {
        let mut h = Harness::<Filter>::new([("field", "a"), ("equals", "x")]).unwrap();
        assert_eq!(
            h.run_one(testing::raw_event(b"not json")),
            OwnedOutcome::Fail(
                "filter: event value is not valid JSON: expected ident at line 1 column 2".into()
            )
        );
        let mut h =
            Harness::<Filter>::new([("field", "a"), ("equals", "x"), ("on_invalid", "drop")])
                .unwrap();
        assert_eq!(h.run_one(testing::raw_event(b"{")), OwnedOutcome::Drop);
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let err = |cfg: &[(&str, &str)]| Harness::<Filter>::new(cfg.iter().copied()).unwrap_err();
        assert_eq!(
            err(&[("equals", "x")]),
            "config `field`: required but not set"
        );
        assert_eq!(
            err(&[("field", "a")]),
            "set one of `equals`, `not_equals`, `exists`, `in`"
        );
        assert_eq!(
            err(&[("field", "a"), ("equals", "x"), ("in", "y")]),
            "set only one of `equals`, `not_equals`, `exists`, `in`"
        );
        assert_eq!(
            err(&[("field", "a"), ("equals", "x"), ("action", "delete")]),
            "config `action`: expected one of drop, keep, got \"delete\""
        );
        assert_eq!(
            err(&[("field", "a"), ("exists", "maybe")]),
            "config `exists`: expected true or false, got \"maybe\""
        );
        assert!(err(&[("field", "a"), ("equal", "x")]).starts_with("config `equal`: unknown key"));
    }
}
