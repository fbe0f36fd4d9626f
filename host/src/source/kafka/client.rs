//! What the Kafka source and the Kafka sink share: librdkafka option
//! passthrough (with file paths resolved against the config's directory),
//! the offline check `weir validate` runs on those options, and a client
//! context that sends librdkafka's own log lines to `tracing`, tagged with
//! the connector's name.
//!
//! The client is built with TLS and SASL (OpenSSL: `PLAIN`,
//! `SCRAM-SHA-256`, `SCRAM-SHA-512`) and every codec (`gzip`, `snappy`,
//! `lz4`, `zstd`). `GSSAPI` (Kerberos) and `OAUTHBEARER` token retrieval
//! are not built in; librdkafka refuses them when the client is created,
//! and `weir validate` reports that at the option's line.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use serde::Deserialize;

/// One librdkafka setting as written in the config: a string, a number or
/// a boolean (`"security.protocol" = "SASL_SSL"`, `"linger.ms" = 5`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// A string, passed as is.
    String(String),
    /// An integer, passed in decimal.
    Integer(i64),
    /// A float, passed in decimal.
    Float(f64),
    /// A boolean, passed as `true`/`false`.
    Bool(bool),
}

impl OptionValue {
    /// The value as librdkafka reads it.
    pub fn to_setting(&self) -> String {
        match self {
            OptionValue::String(s) => s.clone(),
            OptionValue::Integer(i) => i.to_string(),
            OptionValue::Float(f) => f.to_string(),
            OptionValue::Bool(b) => b.to_string(),
        }
    }
}

/// librdkafka settings passed through unchanged (TLS, SASL, timeouts).
pub type KafkaOptions = BTreeMap<String, OptionValue>;

/// librdkafka options that name a file. A relative path is resolved
/// against the config file's directory, like every other path in a Weir
/// config (librdkafka itself would resolve it against the working
/// directory).
const PATH_OPTIONS: &[&str] = &[
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
    "ssl.crl.location",
    "sasl.kerberos.keytab",
];

/// Build a client config: Weir's settings first, then the user's `options`,
/// which may override any of them except the names in `reserved` (settings
/// Weir's guarantees depend on). Errors name the offending option.
pub(crate) fn client_config(
    base: &[(&str, String)],
    options: &KafkaOptions,
    reserved: &[&str],
    config_dir: &Path,
) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    for (key, value) in base {
        config.set(*key, value);
    }
    for (key, value) in options {
        if reserved.contains(&key.as_str()) {
            return Err(format!(
                "option `{key}` is managed by weir and cannot be set (offsets are committed only after the outputs are acknowledged)"
            ));
        }
        let mut setting = value.to_setting();
        // `ssl.ca.location = "probe"` asks librdkafka to find the system CAs.
        if PATH_OPTIONS.contains(&key.as_str()) && setting != "probe" {
            let path = Path::new(&setting);
            if path.is_relative() {
                setting = config_dir.join(path).to_string_lossy().into_owned();
            }
        }
        config.set(key, setting);
    }
    Ok(config)
}

/// A problem `weir validate` found in a Kafka client's settings: the
/// option at fault when it is one of the user's `options`, and
/// librdkafka's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// The `options` key at fault, if the problem is about one.
    pub option: Option<String>,
    /// What librdkafka said.
    pub message: String,
}

impl OptionProblem {
    /// The problem as `(key segments under the connector's table,
    /// message)`: `["options", "ssl.ca.location"]`, or none for the table.
    pub fn into_keyed(self) -> (Vec<String>, String) {
        let key = match self.option {
            Some(o) => vec!["options".to_owned(), o],
            None => Vec::new(),
        };
        (key, self.message)
    }
}

/// Check `config` the way librdkafka does when `weir run` creates the
/// client, without connecting to anything: every option name and value
/// (a misspelled property, `security.protocol = "SASL_SSL"` in a build
/// without TLS) and what creating a client checks (the TLS files exist and
/// parse, the SASL mechanism has a provider). `options` are the user's,
/// to point at the one at fault.
pub(crate) fn offline_check(
    config: &ClientConfig,
    options: &KafkaOptions,
) -> Result<(), OptionProblem> {
    let mut config = config.clone();
    // Without brokers a client makes no connection at all.
    config.remove("bootstrap.servers");
    if let Err(err) = config.create_native_config() {
        return Err(match err {
            KafkaError::ClientConfig(_, desc, key, _) => OptionProblem {
                option: options.contains_key(&key).then_some(key),
                message: desc,
            },
            other => OptionProblem {
                option: None,
                message: other.to_string(),
            },
        });
    }
    // librdkafka's message for an unreadable file does not name it.
    for key in PATH_OPTIONS {
        if let Some(path) = config.get(key)
            && !(*key == "ssl.ca.location" && path == "probe")
            && let Err(e) = std::fs::File::open(path)
        {
            return Err(OptionProblem {
                option: options.contains_key(*key).then(|| (*key).to_owned()),
                message: format!("cannot read {path}: {e}"),
            });
        }
    }
    // Consumer-only settings only draw a warning from a producer, and a
    // producer that never connects is destroyed at once (a consumer's
    // destruction can wait on its group).
    match config.create_with_context::<_, rdkafka::producer::BaseProducer<Silent>>(Silent) {
        Ok(_) => Ok(()),
        Err(err) => {
            let message = match err {
                KafkaError::ClientCreation(m) => m,
                other => other.to_string(),
            };
            // librdkafka names the property in its message ("ssl.ca.location
            // failed: ..."): point at it when it is one of ours.
            let option = options
                .keys()
                .filter(|k| message.contains(k.as_str()))
                .max_by_key(|k| k.len())
                .or_else(|| {
                    // Or it names the value ("No provider for SASL mechanism GSSAPI").
                    options
                        .iter()
                        .filter(|(_, v)| {
                            let v = v.to_setting();
                            v.len() >= 3 && message.contains(&v)
                        })
                        .map(|(k, _)| k)
                        .max_by_key(|k| k.len())
                })
                .cloned();
            let message = if message.contains("No provider for SASL mechanism") {
                // librdkafka's advice (recompile it) is not the user's to take.
                format!(
                    "{message} (this weir supports SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; GSSAPI/Kerberos is not built in)"
                )
            } else {
                message
            };
            Err(OptionProblem { option, message })
        }
    }
}

/// A client context that drops librdkafka's log lines (for the offline
/// check, whose clients never connect).
struct Silent;

impl ClientContext for Silent {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl rdkafka::producer::ProducerContext for Silent {
    type DeliveryOpaque = ();
    fn delivery(&self, _result: &rdkafka::message::DeliveryResult<'_>, _opaque: ()) {}
}

/// Client context that logs librdkafka's messages through `tracing`.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// Connector name put on every log line.
    pub connector: String,
    /// `source` or `sink`, for messages.
    pub kind: &'static str,
    /// The last TLS or SASL failure the client reported, until a check
    /// reaches the brokers again: readiness names it instead of a timeout.
    pub last_error: Arc<Mutex<Option<String>>>,
}

impl LogContext {
    /// A context for the connector `connector` of `kind` (`source`/`sink`).
    pub fn new(connector: String, kind: &'static str) -> LogContext {
        LogContext {
            connector,
            kind,
            last_error: Arc::default(),
        }
    }

    fn remember(&self, error: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// Ask the brokers for metadata within [`CHECK_WITHIN`] (readiness allows
/// 3 s); on failure report the TLS or SASL failure the client last saw, if
/// any, rather than the timeout it causes.
pub fn check_brokers<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    last_error: &Mutex<Option<String>>,
) -> Result<(), String> {
    match client.fetch_metadata(None, CHECK_WITHIN) {
        Ok(_) => {
            if let Ok(mut last) = last_error.lock() {
                *last = None;
            }
            Ok(())
        }
        Err(e) => match last_error.lock().ok().and_then(|l| l.clone()) {
            Some(known) => Err(known),
            None => Err(format!("brokers unreachable: {e}")),
        },
    }
}

/// How long [`check_brokers`] waits for the brokers.
pub const CHECK_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let connector = &self.connector;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(connector, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(connector, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(connector, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(connector, facility = fac, "librdkafka: {log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // End of partition is reported through this callback too; it is
        // news only for `stop_at_end`, which sees it on the consumer.
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(connector = %self.connector, "kafka client: {reason}");
            return;
        }
        // A TLS or SASL failure does not heal by retrying: say it plainly,
        // with what to check. librdkafka keeps retrying (a rotated
        // certificate or password may yet be fixed), so the pipeline
        // waits instead of stopping.
        let (kind, connector) = (self.kind, &self.connector);
        match error.rdkafka_error_code() {
            Some(rdkafka::types::RDKafkaErrorCode::SSL) => {
                self.remember(format!("TLS handshake with the brokers failed: {reason}"));
                tracing::error!(
                connector = %connector,
                "kafka {kind} `{connector}`: TLS handshake with the brokers failed: {reason} \
                 (check `ssl.ca.location`, and `ssl.certificate.location`/`ssl.key.location` if the brokers require a client certificate)"
                );
            }
            Some(rdkafka::types::RDKafkaErrorCode::Authentication) => {
                self.remember(format!(
                    "SASL authentication with the brokers failed: {reason}"
                ));
                tracing::error!(
                connector = %connector,
                "kafka {kind} `{connector}`: SASL authentication with the brokers failed: {reason} \
                 (check `sasl.mechanism`, `sasl.username` and `sasl.password`)"
                );
            }
            _ => tracing::warn!(connector = %connector, "kafka client: {error}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_names_the_last_tls_or_sasl_failure_not_a_timeout() {
        use rdkafka::producer::Producer as _;
        let log = LogContext::new("in".into(), "source");
        // Nothing listens on port 9 of the loopback address.
        let producer: rdkafka::producer::FutureProducer<LogContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .create_with_context(log.clone())
            .unwrap();
        let unknown = check_brokers(producer.client(), &log.last_error).unwrap_err();
        assert!(unknown.starts_with("brokers unreachable: "), "{unknown}");

        log.remember("SASL authentication with the brokers failed: bad password".into());
        assert_eq!(
            check_brokers(producer.client(), &log.last_error),
            Err("SASL authentication with the brokers failed: bad password".into())
        );
    }

    #[test]
    fn options_accept_strings_numbers_and_booleans() {
        let options: KafkaOptions = toml::from_str(
            "\"security.protocol\" = \"SASL_SSL\"\n\"linger.ms\" = 5\n\"enable.ssl.certificate.verification\" = false",
        )
        .unwrap();
        let config =
            client_config(&[("linger.ms", "0".into())], &options, &[], Path::new(".")).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
    }

    fn check(options: &str) -> Result<(), OptionProblem> {
        let options: KafkaOptions = toml::from_str(options).unwrap();
        let config = client_config(
            &[("bootstrap.servers", "127.0.0.1:1".into())],
            &options,
            &[],
            Path::new("/etc/weir"),
        )
        .unwrap();
        offline_check(&config, &options)
    }

    #[test]
    fn tls_sasl_and_every_codec_are_built_in() {
        for options in [
            "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"p\"",
            "\"security.protocol\" = \"SSL\"",
            "\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"u\"\n\"sasl.password\" = \"p\"",
            "\"sasl.mechanism\" = \"SCRAM-SHA-256\"",
            "\"compression.type\" = \"zstd\"",
            "\"compression.type\" = \"lz4\"",
            "\"compression.type\" = \"snappy\"",
            "\"compression.type\" = \"gzip\"",
        ] {
            assert_eq!(check(options), Ok(()), "{options}");
        }
    }

    #[test]
    fn offline_check_names_the_option_at_fault() {
        let err = check("\"security.protocool\" = \"SSL\"").unwrap_err();
        assert_eq!(err.option.as_deref(), Some("security.protocool"));
        assert!(
            err.message.contains("No such configuration property"),
            "{err:?}"
        );

        let err = check("\"compression.type\" = \"brotli\"").unwrap_err();
        assert_eq!(err.option.as_deref(), Some("compression.type"));
        assert!(err.message.contains("brotli"), "{err:?}");

        // Kerberos is not built in: refused when the client is created.
        let err = check("\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"GSSAPI\"")
            .unwrap_err();
        assert!(err.message.contains("GSSAPI"), "{err:?}");

        // A CA file that does not exist, resolved against the config's directory.
        let err =
            check("\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"missing-ca.pem\"")
                .unwrap_err();
        assert_eq!(err.option.as_deref(), Some("ssl.ca.location"), "{err:?}");
        assert!(err.message.contains("/etc/weir/missing-ca.pem"), "{err:?}");
    }

    #[test]
    fn relative_file_options_resolve_against_the_config_dir() {
        let options: KafkaOptions = toml::from_str(
            "\"ssl.ca.location\" = \"certs/ca.pem\"\n\"ssl.key.location\" = \"/abs/key.pem\"",
        )
        .unwrap();
        let config = client_config(&[], &options, &[], Path::new("/etc/weir")).unwrap();
        assert_eq!(
            config.get("ssl.ca.location"),
            Some("/etc/weir/certs/ca.pem")
        );
        assert_eq!(config.get("ssl.key.location"), Some("/abs/key.pem"));
        let options: KafkaOptions = toml::from_str("\"ssl.ca.location\" = \"probe\"").unwrap();
        let config = client_config(&[], &options, &[], Path::new("/etc/weir")).unwrap();
        assert_eq!(config.get("ssl.ca.location"), Some("probe"));
    }

    #[test]
    fn reserved_options_are_refused() {
        let options: KafkaOptions = toml::from_str("\"enable.auto.commit\" = true").unwrap();
        let err =
            client_config(&[], &options, &["enable.auto.commit"], Path::new(".")).unwrap_err();
        assert!(
            err.starts_with("option `enable.auto.commit` is managed by weir"),
            "{err}"
        );
    }
}
