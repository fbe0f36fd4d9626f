//! Keeping secrets out of everything Weir prints.
//!
//! Three kinds of secret are known: the value of every config field that is
//! secret by nature (its key names a password, token, secret, credential,
//! private key or connection URL: [`names_a_secret`]), whether written in
//! the file or substituted for a `${VAR}`; every value substituted for a
//! `${VAR}` whose variable's name says it is a secret (`${DB_PASSWORD}`,
//! `${API_TOKEN}`, `${AWS_SECRET_ACCESS_KEY}`); and the password part of any
//! URL (`scheme://user:password@host`). A `${VAR}` that is neither (a
//! directory, a host name, a topic) is shown as it is: hiding it would only
//! garble the logs. [`redact`] replaces all three in a text;
//! the log writer ([`RedactingStderr`]), error messages at the command
//! line's edge, `weir validate`'s report and the admin API's plugin views
//! pass through it, so a secret that reaches an error message — a plugin
//! whose `init` echoes its config, a driver that quotes the URL it could not
//! parse — is still not shown.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not remembered: replacing every `1` or
/// `on` in a message would garble it without hiding anything worth hiding.
const MIN_SECRET_CHARS: usize = 4;

static SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Words that make a variable name or a config key name a secret when a
/// word of the name (split at every character that is not a letter or a
/// digit, and where lower case turns upper) contains one of them
/// (`PGPASSWORD`, `authToken`)...
const SECRET_PARTS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
];

/// ...or is one of these whole (`pass` but not `passthrough`)...
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "auth",
    "authorization",
    "apikey",
    "private",
    "pem",
    "jaas",
    "salt",
    "hmac",
];

/// ...or is `key` right after one of these (`ACCESS_KEY`, `api_key`,
/// `ssl.key.password`): a bare `key` is usually a record key or a key
/// template, which is not secret.
const KEY_QUALIFIERS: &[&str] = &[
    "access",
    "api",
    "private",
    "secret",
    "signing",
    "encryption",
    "master",
    "ssl",
    "client",
    "account",
    "sas",
    "session",
];

/// Words of a connection URL or string's name: one may carry a password
/// anywhere (a query parameter, a vendor's own syntax), not only as
/// `user:password@`, so one that comes from the environment is hidden whole
/// (one written in the file shows, with its `user:password@` part hidden).
const CONNECTION_WORDS: &[&str] = &["url", "uri", "dsn"];

/// The words of `name`, lower case (see [`SECRET_PARTS`]).
fn words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether `name` (an environment variable's name, or a config key path
/// like `sources.in.options."sasl.password"`) names a secret: a password,
/// token, secret, credential or private key.
pub fn names_a_secret(name: &str) -> bool {
    let words = words(name);
    words.iter().enumerate().any(|(i, w)| {
        SECRET_PARTS.iter().any(|part| w.contains(part))
            || SECRET_WORDS.contains(&w.as_str())
            || (w == "key" && i > 0 && KEY_QUALIFIERS.contains(&words[i - 1].as_str()))
    })
}

/// Whether `name` names a connection URL or string (`REDIS_URL`,
/// `sinks.db.uri`; see [`CONNECTION_WORDS`]).
pub fn names_a_connection(name: &str) -> bool {
    words(name)
        .iter()
        .any(|w| CONNECTION_WORDS.contains(&w.as_str()))
}

/// Remember `value` (a secret field's value, or substituted for a secret
/// `${VAR}`) as a secret of this process.
pub fn remember(value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    secrets.insert(value.to_owned());
    // A message may quote the value escaped rather than as it is: Rust's
    // `{:?}` (a plugin's `unknown mode "..."`) or JSON. A secret holding a
    // quote, a backslash or a control character then appears in that form.
    secrets.insert(value.escape_debug().to_string());
    if let Ok(json) = serde_json::to_string(value) {
        let inner = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(&json);
        secrets.insert(inner.to_owned());
    }
}

/// `text` with the password of every URL and every remembered secret
/// replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = redact_url_passwords(text);
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Longest first, so a secret containing another is replaced whole.
    let mut ordered: Vec<&String> = secrets.iter().collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in ordered {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// `text` with the password of every `scheme://user:password@host...`
/// replaced by [`REDACTED`]. A URL runs to the next whitespace or quote;
/// its user information ends at the *last* `@` before any `?` or `#`, so a
/// password containing `/`, `@` or `:` is hidden whole (a raw one, not
/// percent-encoded, as people do write them).
pub fn redact_url_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
        let token = &after[..end];
        let authority_end = token.find(['?', '#']).unwrap_or(token.len());
        let redacted = token[..authority_end].rfind('@').and_then(|at| {
            let colon = token[..at].find(':')?;
            Some(format!("{}:{REDACTED}{}", &token[..colon], &token[at..]))
        });
        match redacted {
            Some(r) => out.push_str(&r),
            None => out.push_str(token),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A log writer to stderr that passes every line through [`redact`]. Use
/// with `tracing_subscriber::fmt().with_writer(RedactingStderr::default)`.
#[derive(Debug, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        // A closed or failing stderr has nowhere to report to.
        let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden_whatever_they_contain() {
        for (url, shown) in [
            (
                "redis://user:s3cr/et@cache:6379/0",
                "redis://user:<redacted>@cache:6379/0",
            ),
            (
                "mongodb://app:p@ss/w@rd@db1:27017,db2:27017/?authSource=admin",
                "mongodb://app:<redacted>@db1:27017,db2:27017/?authSource=admin",
            ),
            ("redis://:only-pass@h:1", "redis://:<redacted>@h:1"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("mongodb://user@h/", "mongodb://user@h/"),
        ] {
            let text = format!("cannot connect to \"{url}\": refused");
            assert_eq!(
                redact_url_passwords(&text),
                format!("cannot connect to \"{shown}\": refused")
            );
        }
        assert_eq!(
            redact_url_passwords("a redis://u:x@h b mongodb://v:y@g c"),
            "a redis://u:<redacted>@h b mongodb://v:<redacted>@g c"
        );
    }

    #[test]
    fn secret_names_are_told_from_plain_ones() {
        for secret in [
            "DB_PASSWORD",
            "PGPASSWORD",
            "API_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "WEIR_TEST_PLUGIN_SECRET",
            "sources.in.options.\"sasl.password\"",
            "sources.in.options.\"ssl.key.password\"",
            "sources.in.options.\"sasl.jaas.config\"",
            "sinks.t.secret_access_key",
            "host.admin.token",
            "plugins.p.config.apiKey",
            "plugins.p.config.authToken",
            "plugins.p.config.pass",
            "MASK_SALT",
        ] {
            assert!(names_a_secret(secret), "{secret}");
        }
        for plain in [
            "WEIR_PLUGIN_DIR",
            "plugins.filter.path",
            "SCYLLA_NODES",
            "KAFKA_BROKERS",
            "sinks.cache.commands[0].key",
            "sinks.docs.key_fields",
            "sources.in.topics[0]",
            "plugins.p.config.passthrough",
            "REDIS_URL",
            "HOME",
        ] {
            assert!(!names_a_secret(plain), "{plain}");
        }
        for connection in [
            "REDIS_URL",
            "MONGODB_URI",
            "sinks.db.uri",
            "sinks.pg.url",
            "PG_DSN",
        ] {
            assert!(names_a_connection(connection), "{connection}");
        }
        assert!(!names_a_connection("WEIR_PLUGIN_DIR"));
        assert!(!names_a_connection("sources.in.brokers"));
    }

    #[test]
    fn remembered_secrets_are_hidden() {
        remember("hunter2-token-for-test");
        remember("ab");
        assert_eq!(
            redact("refusing config: key=hunter2-token-for-test; ab"),
            "refusing config: key=<redacted>; ab"
        );
    }

    #[test]
    fn secrets_quoted_escaped_are_hidden_too() {
        let secret = "pa\"ss\\wo\nrd-é";
        remember(secret);
        // As a plugin's `{:?}` quotes it, and as JSON does.
        let debug = format!("config `mode`: unknown mode {secret:?}");
        assert_eq!(redact(&debug), "config `mode`: unknown mode \"<redacted>\"");
        let json = serde_json::json!({ "error": secret }).to_string();
        assert_eq!(redact(&json), r#"{"error":"<redacted>"}"#);
        assert_eq!(redact(secret), REDACTED);
    }
}
