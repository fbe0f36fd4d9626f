//! `${VAR}` interpolation: every string value of the config (never a key)
//! has `${NAME}` replaced by the environment variable `NAME`; `$${` stands
//! for a literal `${`. An unset variable is an error at the position of its
//! `${` in the file. A `$` not followed by `{` is kept as it is.
//!
//! Secrets are remembered here, for [`crate::secrets::redact`]: the whole
//! value of a field that is secret by nature (and of a connection URL field
//! whose value came from the environment), and the value of a variable
//! whose name says it is a secret or a connection URL (see
//! [`crate::secrets::names_a_secret`]). Any other `${VAR}` (a directory, a
//! host list, a topic) is not a secret and is shown.

use toml::Spanned;
use toml::de::{DeString, DeValue};

use super::diagnostic::{Span, join_key};

/// A variable that could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError {
    /// Where in the file (the `${`, or the whole string).
    pub span: Span,
    /// Dotted key path of the string.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Replace `${VAR}` in every string of `value` (found at `path`), looking
/// variables up with `env`. `text` is the whole file, to place errors.
pub(crate) fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpolationError>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            let secret_field = crate::secrets::names_a_secret(path);
            if !s.contains('$') {
                if secret_field {
                    crate::secrets::remember(s);
                }
                return;
            }
            let raw = text.get(span.clone()).unwrap_or("");
            match substitute(s, env) {
                Ok(new) => {
                    if secret_field || crate::secrets::names_a_connection(path) {
                        crate::secrets::remember(&new);
                    }
                    *s = DeString::Owned(new);
                }
                Err(problems) => {
                    for p in problems {
                        // Point at the `${NAME` in the file when it is there
                        // verbatim (no escapes in between), else at the string.
                        let at = raw.find(&p.needle).map_or(span.clone(), |i| {
                            span.start + i..span.start + i + p.needle.len()
                        });
                        errors.push(InterpolationError {
                            span: at,
                            key: path.to_owned(),
                            message: p.message,
                        });
                    }
                }
            }
        }
        DeValue::Array(items) => {
            let items: &mut [Spanned<DeValue<'_>>] = std::borrow::BorrowMut::borrow_mut(items);
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), text, env, errors);
            }
        }
        DeValue::Table(table) => {
            for (key, item) in table.iter_mut() {
                let child = join_key(path, key.get_ref());
                interpolate_value(item, &child, text, env, errors);
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// One bad `${...}` in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    /// The text to look for in the file to place the problem.
    needle: String,
    message: String,
}

/// `s` with every `${NAME}` replaced and every `$${` turned into `${`.
fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(s.len());
    let mut problems = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                problems.push(Problem {
                    needle: after.to_owned(),
                    message: "unterminated `${`: write `${NAME}` for a variable or `$${` for a literal `${`".to_owned(),
                });
                rest = "";
                break;
            };
            let name = &tail[..end];
            let needle = format!("${{{name}}}");
            if !is_var_name(name) {
                problems.push(Problem {
                    needle,
                    message: format!(
                        "`${{{name}}}` is not a valid variable name (letters, digits and `_`, not starting with a digit); write `$${{` for a literal `${{`"
                    ),
                });
            } else {
                match env(name) {
                    Some(v) => {
                        // A variable named as a secret is one wherever it
                        // is used (a password spliced into a URL).
                        if crate::secrets::names_a_secret(name)
                            || crate::secrets::names_a_connection(name)
                        {
                            crate::secrets::remember(&v);
                        }
                        out.push_str(&v);
                    }
                    None => problems.push(Problem {
                        needle,
                        message: format!("environment variable `{name}` is not set"),
                    }),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("alice".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_and_keeps_escapes_and_lone_dollars() {
        assert_eq!(substitute("u=${USER}!", &env).unwrap(), "u=alice!");
        assert_eq!(
            substitute("${USER}${EMPTY}${USER}", &env).unwrap(),
            "alicealice"
        );
        assert_eq!(
            substitute("$${USER} costs $5", &env).unwrap(),
            "${USER} costs $5"
        );
        assert_eq!(substitute("$$", &env).unwrap(), "$$");
    }

    /// Interpolate `text` as a config would be, with `vars` as the
    /// environment.
    fn load(text: &str, vars: &[(&str, &str)]) {
        let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
        assert!(syntax.is_empty(), "{syntax:?}");
        let mut root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let mut errors = Vec::new();
        interpolate_value(&mut root, "", text, &env, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn only_secrets_are_remembered_not_every_variable() {
        use crate::secrets::{REDACTED, redact};
        load(
            r#"
[plugins.p]
path = "${T1_PLUGIN_DIR}/p.wasm"
config = { mode = "${T1_MODE_SECRET}", api_token = "t1-literal-token", region = "t1-north-9" }

[sinks.s]
url = "${T1_CONNECTION}"
brokers = "${T1_HOSTS}"
password_file = "t1-pw-literal"
"#,
            &[
                ("T1_PLUGIN_DIR", "/srv/t1/plugins"),
                ("T1_MODE_SECRET", "t1-mode-value"),
                ("T1_CONNECTION", "t1proto://t1-conn-host/db?key=v"),
                ("T1_HOSTS", "t1-kafka-1:9092"),
            ],
        );
        // A plain `${VAR}` (a directory, a host list) and a plain literal
        // are shown...
        for shown in ["/srv/t1/plugins", "t1-kafka-1:9092", "t1-north-9"] {
            assert_eq!(redact(&format!("dir={shown}")), format!("dir={shown}"));
        }
        // ...a variable named a secret, a secret field (even written in
        // the file) and a connection URL from the environment are not.
        for hidden in [
            "t1-mode-value",
            "t1-literal-token",
            "t1-pw-literal",
            "t1proto://t1-conn-host/db?key=v",
        ] {
            assert_eq!(redact(&format!("v={hidden}")), format!("v={REDACTED}"));
        }
    }

    #[test]
    fn reports_every_unset_or_malformed_variable() {
        let problems = substitute("${NOPE}-${1X}-${USER}-${OPEN", &env).unwrap_err();
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(messages[0], "environment variable `NOPE` is not set");
        assert!(messages[1].starts_with("`${1X}` is not a valid variable name"));
        assert!(messages[2].starts_with("unterminated `${`"));
    }
}
