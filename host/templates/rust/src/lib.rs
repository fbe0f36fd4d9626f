//! {{name}}: a Weir plugin.
//!
//! Drops events whose `type` is the configured `drop_type` (default
//! `heartbeat`), stamps every other JSON object with `meta.plugin`, and
//! passes deletes (tombstones) on so the sink deletes the key too.

use weir_sdk::{Config, Event, JsonError, Outcome, Output, Transform, json};

/// The plugin's state, built once per instance by `init`.
pub struct Plugin {
    /// Events whose `type` field has this value are dropped.
    drop_type: String,
}

impl Transform for Plugin {
    fn init(config: &Config) -> Result<Self, String> {
        // Refuse a misspelt key instead of ignoring it.
        config.deny_unknown(&["drop_type"], &[])?;
        Ok(Plugin {
            drop_type: config.get_or("drop_type", "heartbeat".to_owned())?,
        })
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        let mut value = match event.json() {
            Ok(v) => v,
            // A tombstone has no value: pass the delete on.
            Err(JsonError::NoValue) => return Outcome::pass(event),
            // Not JSON: the event goes to the dead-letter sink with the reason.
            Err(e) => return Outcome::fail(e),
        };
        if json::get_str(&value, "type") == Some(self.drop_type.as_str()) {
            return Outcome::Drop;
        }
        if let Err(e) = json::set(&mut value, "meta.plugin", "{{name}}".into()) {
            return Outcome::fail(e);
        }
        // No route: the pipeline's default sink. `.route("name")` picks one.
        Outcome::emit(Output::json(&value).key_of(event))
    }
}

weir_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::Op;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, OwnedEvent, OwnedOutcome};

    #[test]
    fn drops_the_configured_type_and_stamps_the_rest() {
        let mut h = Harness::<Plugin>::new([("drop_type", "ping")]).unwrap();
        let out = h.run_json([json!({"type": "ping"}), json!({"type": "click", "user": "ann"})]);
        assert_eq!(out[0], OwnedOutcome::Drop);
        assert_eq!(
            testing::emitted_json(&out[1]),
            json!({"type": "click", "user": "ann", "meta": {"plugin": "{{name}}"}})
        );
    }

    #[test]
    fn passes_deletes_and_fails_values_that_are_not_objects() {
        let mut h = Harness::<Plugin>::new(Vec::<(String, String)>::new()).unwrap();
        let delete = OwnedEvent {
            key: Some("k1".into()),
            value: None,
            op: Op::Delete,
            ..testing::event(json!(null))
        };
        let out = h.run_one(delete);
        assert_eq!(testing::outputs(&out)[0].op, Op::Delete);
        assert_eq!(testing::outputs(&out)[0].key.as_deref(), Some(&b"k1"[..]));

        let out = h.run_one(testing::event(json!([1, 2])));
        assert!(matches!(out, OwnedOutcome::Fail(_)), "{out:?}");
    }

    #[test]
    fn refuses_an_unknown_config_key() {
        let err = Harness::<Plugin>::new([("drop_tpye", "x")]).unwrap_err();
        assert!(err.contains("unknown key"), "{err}");
    }
}
