//! Weir example plugin `transform`: reshape JSON values — rename, remove,
//! mask PII, add static or computed fields.
//!
//! | key | meaning |
//! |---|---|
//! | `rename.<from>` = `<to>` | move the field at dotted path `<from>` to `<to>` (intermediate objects are created) |
//! | `remove` = `a,b.c` | comma-separated dotted paths to remove |
//! | `mask.<path>` = `sha256` \| `redact` \| `partial` | mask a PII field: hex SHA-256 of its text (salted with `mask_salt`), the text `[redacted]`, or a partial view (`j***@example.com`, `5***`) |
//! | `mask_salt` | text prepended before hashing (default empty) |
//! | `add.<path>` = `<spec>` | set a field, see below |
//! | `key` = `<path>` | set the output key to this field's text (after all steps); default: keep the event's key |
//! | `on_invalid` | value not JSON: `fail` (default), `drop`, or `pass` unchanged |
//!
//! `add` specs: `$timestamp_ms` (event time, number), `$timestamp` (event
//! time, RFC 3339 UTC text), `$origin`, `$key` (event key as text), `$op`
//! (`insert`/`upsert`/`delete`), `$field:<path>` (a copy of another field);
//! anything else is a static value — JSON if it parses (`42`, `true`,
//! `{"a":1}`, `"text"`), otherwise the text itself. Write `$$` for a
//! literal leading `$`.
//!
//! Steps run in this order: rename, remove, mask, add. Events without a
//! value (tombstones, deletes) pass unchanged. The output keeps the event's
//! op and headers.
//!
//! ```text
//! weir plugin test transform.wasm --config rename.userId=user.id \
//!     --config remove=debug,internal --config mask.user.email=sha256 \
//!     --config add.processed_at='$timestamp' --config add.pipeline=orders
//! ```

use sha2::{Digest, Sha256};
use weir_sdk::{Config, Event, Outcome, Output, Transform, json};

/// How a PII field is masked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mask {
    Sha256,
    Redact,
    Partial,
}

/// Where an added field's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Static(json::Value),
    TimestampMs,
    Timestamp,
    Origin,
    Key,
    Op,
    Field(String),
}

impl Source {
    fn parse(spec: &str) -> Result<Source, String> {
        if let Some(literal) = spec.strip_prefix("$$") {
            return Ok(Source::Static(json::Value::String(format!("${literal}"))));
        }
        if let Some(computed) = spec.strip_prefix('$') {
            return match computed {
                "timestamp_ms" => Ok(Source::TimestampMs),
                "timestamp" => Ok(Source::Timestamp),
                "origin" => Ok(Source::Origin),
                "key" => Ok(Source::Key),
                "op" => Ok(Source::Op),
                _ => match computed.strip_prefix("field:") {
                    Some(path) if !path.is_empty() => Ok(Source::Field(path.to_owned())),
                    _ => Err(format!(
                        "unknown computed value `{spec}` (known: $timestamp_ms, $timestamp, \
                         $origin, $key, $op, $field:<path>; write $$ for a literal $)"
                    )),
                },
            };
        }
        Ok(Source::Static(
            weir_sdk::serde_json::from_str(spec)
                .unwrap_or_else(|_| json::Value::String(spec.to_owned())),
        ))
    }

    fn value(&self, event: &Event<'_>, current: &json::Value) -> json::Value {
        match self {
            Source::Static(v) => v.clone(),
            Source::TimestampMs => event.timestamp_ms().into(),
            Source::Timestamp => rfc3339(event.timestamp_ms()).into(),
            Source::Origin => event.origin().into(),
            Source::Key => event
                .key()
                .map_or(json::Value::Null, |k| String::from_utf8_lossy(k).into()),
            Source::Op => event.op().as_str().into(),
            Source::Field(path) => json::get(current, path)
                .cloned()
                .unwrap_or(json::Value::Null),
        }
    }
}

/// The transform plugin.
#[derive(Debug)]
pub struct Reshape {
    renames: Vec<(String, String)>,
    removes: Vec<String>,
    masks: Vec<(String, Mask)>,
    salt: String,
    adds: Vec<(String, Source)>,
    key_field: Option<String>,
    on_invalid: String,
}

impl Transform for Reshape {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(
            &["remove", "mask_salt", "key", "on_invalid"],
            &["rename.", "mask.", "add."],
        )?;
        let renames = config
            .with_prefix("rename.")
            .map(|(from, to)| (from.to_owned(), to.to_owned()))
            .collect();
        let masks = config
            .with_prefix("mask.")
            .map(|(path, how)| {
                let mask = match how {
                    "sha256" => Mask::Sha256,
                    "redact" => Mask::Redact,
                    "partial" => Mask::Partial,
                    other => {
                        return Err(format!(
                            "config `mask.{path}`: expected sha256, redact or partial, got {other:?}"
                        ));
                    }
                };
                Ok((path.to_owned(), mask))
            })
            .collect::<Result<_, String>>()?;
        let adds = config
            .with_prefix("add.")
            .map(|(path, spec)| {
                Source::parse(spec)
                    .map(|s| (path.to_owned(), s))
                    .map_err(|e| format!("config `add.{path}`: {e}"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Reshape {
            renames,
            removes: config.list("remove")?,
            masks,
            salt: config.get_or("mask_salt", String::new())?,
            adds,
            key_field: config.get_as("key")?,
            on_invalid: config
                .choice("on_invalid", &["fail", "drop", "pass"], "fail")?
                .to_owned(),
        })
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        if event.value().is_none() {
            return Outcome::pass(event);
        }
        let mut value = match event.json() {
            Ok(v) => v,
            Err(e) => {
                return match self.on_invalid.as_str() {
                    "drop" => Outcome::Drop,
                    "pass" => Outcome::pass(event),
                    _ => Outcome::fail(format!("transform: {e}")),
                };
            }
        };
        Outcome::from(self.reshape(event, &mut value).map(|()| {
            let mut out = Output::json(&value).op(event.op());
            out = match self.key_field.as_deref().and_then(|p| json::get(&value, p)) {
                Some(k) => out.key(json::to_text(k).as_bytes()),
                None => out.key_of(event),
            };
            for (name, v) in event.headers() {
                out = out.header(name, v);
            }
            Outcome::emit(out)
        }))
    }
}

impl Reshape {
    fn reshape(&self, event: &Event<'_>, value: &mut json::Value) -> Result<(), String> {
        for (from, to) in &self.renames {
            json::rename(value, from, to).map_err(|e| format!("transform: {e}"))?;
        }
        for path in &self.removes {
            json::remove(value, path);
        }
        for (path, mask) in &self.masks {
            if let Some(field) = json::get_mut(value, path) {
                *field = self.mask(field, *mask);
            }
        }
        for (path, source) in &self.adds {
            let new = source.value(event, value);
            json::set(value, path, new).map_err(|e| format!("transform: {e}"))?;
        }
        Ok(())
    }

    fn mask(&self, field: &json::Value, mask: Mask) -> json::Value {
        let text = json::to_text(field);
        match mask {
            Mask::Redact => "[redacted]".into(),
            Mask::Sha256 => {
                let mut h = Sha256::new();
                h.update(self.salt.as_bytes());
                h.update(text.as_bytes());
                hex::encode(h.finalize()).into()
            }
            Mask::Partial => {
                let first: String = text.chars().take(1).collect();
                match text.rsplit_once('@') {
                    Some((_, domain)) => format!("{first}***@{domain}").into(),
                    None => format!("{first}***").into(),
                }
            }
        }
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

weir_sdk::export!(Reshape);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, Header, Op, OwnedEvent, OwnedOutcome};

    fn harness(config: &[(&str, &str)]) -> Harness<Reshape> {
        Harness::new(config.iter().copied()).unwrap()
    }

    #[test]
    fn rename_remove_add_in_order() {
        let mut h = harness(&[
            ("rename.userId", "user.id"),
            ("remove", "debug, internal.trace"),
            ("add.processed_at", "$timestamp_ms"),
            ("add.meta.when", "$timestamp"),
            ("add.meta.from", "$origin"),
            ("add.meta.op", "$op"),
            ("add.meta.k", "$key"),
            ("add.copy", "$field:user.id"),
            ("add.version", "2"),
            ("add.team", "orders"),
            ("add.price", "$$5"),
        ]);
        let ev = OwnedEvent {
            key: Some("k9".into()),
            timestamp_ms: 1_700_000_000_123,
            origin: "orders/0/17".into(),
            op: Op::Insert,
            headers: vec![Header::new("trace", "abc")],
            ..testing::event(json!({"userId": 7, "debug": true, "internal": {"trace": 1, "x": 2}}))
        };
        let out = h.run_one(ev);
        let o = &testing::outputs(&out)[0];
        assert_eq!(o.key.as_deref(), Some(&b"k9"[..]));
        assert_eq!(o.op, Op::Insert);
        assert_eq!(o.headers, [Header::new("trace", "abc")]);
        assert_eq!(
            testing::json_of(o),
            json!({
                "user": {"id": 7},
                "internal": {"x": 2},
                "processed_at": 1_700_000_000_123_i64,
                "meta": {"when": "2023-11-14T22:13:20.123Z", "from": "orders/0/17", "op": "insert", "k": "k9"},
                "copy": 7,
                "version": 2,
                "team": "orders",
                "price": "$5",
            })
        );
    }

    #[test]
    fn masks_pii() {
        let mut h = harness(&[
            ("mask.user.email", "sha256"),
            ("mask.phone", "redact"),
            ("mask.contact", "partial"),
            ("mask.card", "partial"),
            ("mask.absent", "redact"),
            ("key", "user.email"),
        ]);
        let out = h.run_json([json!({
            "user": {"email": "jane@example.com"},
            "phone": "+33 6 12 34 56 78",
            "contact": "jane@example.com",
            "card": 4111111111111111_u64,
        })]);
        let v = testing::emitted_json(&out[0]);
        let expected_hash = hex::encode(Sha256::digest(b"jane@example.com"));
        assert_eq!(v["user"]["email"], json!(expected_hash));
        assert_eq!(v["phone"], json!("[redacted]"));
        assert_eq!(v["contact"], json!("j***@example.com"));
        assert_eq!(v["card"], json!("4***"));
        assert!(v.get("absent").is_none());
        // The key is taken after masking: the PII never leaves in the key.
        let key = testing::outputs(&out[0])[0].key.clone().unwrap();
        assert_eq!(key, expected_hash.as_bytes());

        let mut salted = harness(&[("mask.e", "sha256"), ("mask_salt", "pepper")]);
        let v = testing::emitted_json(&salted.run_json([json!({"e": "x"})])[0]);
        assert_eq!(v["e"], json!(hex::encode(Sha256::digest(b"pepperx"))));
    }

    #[test]
    fn tombstones_pass_and_invalid_values_fail() {
        let mut h = harness(&[("remove", "a")]);
        let tombstone = OwnedEvent {
            key: Some("k".into()),
            op: Op::Delete,
            ..OwnedEvent::default()
        };
        let out = h.run_one(tombstone);
        assert_eq!(testing::outputs(&out)[0].op, Op::Delete);
        assert_eq!(testing::outputs(&out)[0].value, None);
        assert!(matches!(
            h.run_one(testing::raw_event(b"{oops")),
            OwnedOutcome::Fail(r) if r.starts_with("transform: event value is not valid JSON")
        ));
        let out = h.run_json([json!([1, 2])]);
        assert_eq!(testing::emitted_json(&out[0]), json!([1, 2]));
        let mut h = harness(&[("add.x.y", "1")]);
        assert_eq!(
            h.run_json([json!({"x": 5})])[0],
            OwnedOutcome::Fail("transform: cannot set `x.y`: `x` is not an object".into())
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let err = |cfg: &[(&str, &str)]| Harness::<Reshape>::new(cfg.iter().copied()).unwrap_err();
        assert_eq!(
            err(&[("mask.email", "hide")]),
            "config `mask.email`: expected sha256, redact or partial, got \"hide\""
        );
        assert!(
            err(&[("add.t", "$now")]).starts_with("config `add.t`: unknown computed value `$now`")
        );
        assert!(err(&[("rename", "x")]).starts_with("config `rename`: unknown key"));
    }

    #[test]
    fn rfc3339_handles_epoch_and_before() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
