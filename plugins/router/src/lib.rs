//! Weir example plugin `router`: choose the sink (route) of each event from
//! one JSON field, with fan-out to several sinks.
//!
//! | key | meaning |
//! |---|---|
//! | `field` | required: dotted path of the field whose text picks the route (`event_type`) |
//! | `routes` | `value:route[+route...]` pairs, comma-separated: `purchase:mongo+audit,view:redis` |
//! | `route.<value>` = `route[+route...]` | one more pair, for values that contain `,` or `:` |
//! | `default` | `route[+route...]` for every other value and for a missing field (`* → archive`) |
//! | `unmatched` | without `default`: `pass` (default: no route, i.e. the pipeline's default route), `drop` or `fail` |
//! | `on_invalid` | value not JSON or absent: `fail` (default), `drop`, or `pass` (no route) |
//!
//! A field's text is a string's content or the JSON text of another value
//! (`42`, `true`). Each output is the event unchanged — value, key, op,
//! headers — with its route set; `a+b` emits one copy per route.
//!
//! ```text
//! weir plugin test router.wasm --config field=event_type \
//!     --config routes=purchase:mongo+audit,view:redis --config default=archive
//! ```

use weir_sdk::{Config, Event, Outcome, Output, Transform, json};

/// What to do with an event whose value matches no route and there is no
/// `default`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unmatched {
    Pass,
    Drop,
    Fail,
}

/// The router plugin.
#[derive(Debug)]
pub struct Router {
    field: String,
    table: Vec<(String, Vec<String>)>,
    default: Option<Vec<String>>,
    unmatched: Unmatched,
    on_invalid: Unmatched,
}

fn parse_targets(key: &str, text: &str) -> Result<Vec<String>, String> {
    let targets: Vec<String> = text.split('+').map(str::trim).map(str::to_owned).collect();
    if targets.iter().any(String::is_empty) {
        return Err(format!(
            "config `{key}`: empty route name in {text:?} (write route or route+route)"
        ));
    }
    Ok(targets)
}

fn parse_mode(config: &Config, key: &str) -> Result<Unmatched, String> {
    let default = if key == "unmatched" { "pass" } else { "fail" };
    Ok(
        match config.choice(key, &["pass", "drop", "fail"], default)? {
            "drop" => Unmatched::Drop,
            "fail" => Unmatched::Fail,
            _ => Unmatched::Pass,
        },
    )
}

impl Transform for Router {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(
            &["field", "routes", "default", "unmatched", "on_invalid"],
            &["route."],
        )?;
        let field = config.required("field")?.to_owned();
        let mut table: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |value: &str, targets: Vec<String>| -> Result<(), String> {
            if table.iter().any(|(v, _)| v == value) {
                return Err(format!("value {value:?} is routed twice"));
            }
            table.push((value.to_owned(), targets));
            Ok(())
        };
        for pair in weir_sdk::config::split_list(config.get("routes").unwrap_or("")) {
            let Some((value, targets)) = pair.rsplit_once(':') else {
                return Err(format!(
                    "config `routes`: {pair:?} is not value:route (e.g. purchase:mongo+audit)"
                ));
            };
            add(value.trim(), parse_targets("routes", targets)?)?;
        }
        for (value, targets) in config.with_prefix("route.") {
            add(value, parse_targets(&format!("route.{value}"), targets)?)?;
        }
        let default = config
            .get("default")
            .map(|d| parse_targets("default", d))
            .transpose()?;
        if table.is_empty() && default.is_none() {
            return Err("set `routes`, `route.<value>` or `default`".to_owned());
        }
        Ok(Router {
            field,
            table,
            default,
            unmatched: parse_mode(config, "unmatched")?,
            on_invalid: parse_mode(config, "on_invalid")?,
        })
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        let value = match event.json() {
            Ok(v) => v,
            Err(e) => {
                return match self.on_invalid {
                    Unmatched::Fail => Outcome::fail(format!("router: {e}")),
                    Unmatched::Drop => Outcome::Drop,
                    Unmatched::Pass => Outcome::pass(event),
                };
            }
        };
        let text = json::get(&value, &self.field).map(json::to_text);
        let targets = text
            .as_deref()
            .and_then(|t| self.table.iter().find(|(v, _)| v == t))
            .map(|(_, targets)| targets)
            .or(self.default.as_ref());
        match targets {
            Some(targets) => Outcome::emit_all(
                targets
                    .iter()
                    .map(|route| Output::from_event(event).route(route.as_str())),
            ),
            None => match self.unmatched {
                Unmatched::Pass => Outcome::pass(event),
                Unmatched::Drop => Outcome::Drop,
                Unmatched::Fail => Outcome::fail(match text {
                    Some(t) => format!("router: no route for {}={t:?}", self.field),
                    None => format!("router: no field {} to route by", self.field),
                }),
            },
        }
    }
}

weir_sdk::export!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, OwnedEvent, OwnedOutcome};

    fn harness(config: &[(&str, &str)]) -> Harness<Router> {
        Harness::new(config.iter().copied()).unwrap()
    }

    #[test]
    fn routes_by_value_with_fan_out_and_default() {
        let mut h = harness(&[
            ("field", "event_type"),
            ("routes", "purchase:mongo+audit, view:redis"),
            ("route.a,b:c", "odd"),
            ("default", "archive"),
        ]);
        let out = h.run_json([
            json!({"event_type": "purchase", "n": 1}),
            json!({"event_type": "view"}),
            json!({"event_type": "click"}),
            json!({"other": 1}),
            json!({"event_type": "a,b:c"}),
        ]);
        assert_eq!(testing::routes(&out[0]), [Some("mongo"), Some("audit")]);
        assert_eq!(testing::routes(&out[1]), [Some("redis")]);
        assert_eq!(testing::routes(&out[2]), [Some("archive")]);
        assert_eq!(testing::routes(&out[3]), [Some("archive")]);
        assert_eq!(testing::routes(&out[4]), [Some("odd")]);
        for o in testing::outputs(&out[0]) {
            assert_eq!(
                testing::json_of(o),
                json!({"event_type": "purchase", "n": 1})
            );
        }
    }

    #[test]
    fn outputs_keep_key_and_op() {
        let mut h = harness(&[("field", "t"), ("routes", "x:sink")]);
        let ev = OwnedEvent {
            key: Some("k".into()),
            op: testing::Op::Delete,
            ..testing::event(json!({"t": "x"}))
        };
        let out = h.run_one(ev.clone());
        let o = &testing::outputs(&out)[0];
        assert_eq!((o.key.clone(), o.op), (ev.key, testing::Op::Delete));
    }

    #[test]
    fn unmatched_without_default() {
        let events = [json!({"t": "x"}), json!({"t": "y"}), json!({})];
        let mut pass = harness(&[("field", "t"), ("routes", "x:sink")]);
        let out = pass.run_json(events.clone());
        assert_eq!(testing::routes(&out[1]), [None]);
        let mut drop = harness(&[("field", "t"), ("routes", "x:sink"), ("unmatched", "drop")]);
        assert_eq!(drop.run_json(events.clone())[1], OwnedOutcome::Drop);
        let mut fail = harness(&[("field", "t"), ("routes", "x:sink"), ("unmatched", "fail")]);
        let out = fail.run_json(events);
        assert_eq!(
            out[1],
            OwnedOutcome::Fail("router: no route for t=\"y\"".into())
        );
        assert_eq!(
            out[2],
            OwnedOutcome::Fail("router: no field t to route by".into())
        );
    }

    #[test]
    fn numbers_and_booleans_route_by_their_text() {
        let mut h = harness(&[("field", "level"), ("routes", "1:low,2:high,true:flag")]);
        let out = h.run_json([json!({"level": 2}), json!({"level": true})]);
        assert_eq!(testing::routes(&out[0]), [Some("high")]);
        assert_eq!(testing::routes(&out[1]), [Some("flag")]);
    }

    #[test]
    fn bad_configs_are_refused() {
        let err = |cfg: &[(&str, &str)]| Harness::<Router>::new(cfg.iter().copied()).unwrap_err();
        assert_eq!(
            err(&[("field", "t")]),
            "set `routes`, `route.<value>` or `default`"
        );
        assert_eq!(
            err(&[("field", "t"), ("routes", "purchase")]),
            "config `routes`: \"purchase\" is not value:route (e.g. purchase:mongo+audit)"
        );
        assert_eq!(
            err(&[("field", "t"), ("routes", "a:x+")]),
            "config `routes`: empty route name in \"x+\" (write route or route+route)"
        );
        assert_eq!(
            err(&[("field", "t"), ("routes", "a:x,a:y")]),
            "value \"a\" is routed twice"
        );
        assert_eq!(
            err(&[("routes", "a:x")]),
            "config `field`: required but not set"
        );
    }
}
