//! What the Kafka source and the Kafka sink share: librdkafka option
//! passthrough and a client context that sends librdkafka's own log lines
//! to `tracing`, tagged with the connector's name.

use std::collections::BTreeMap;

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

/// Build a client config: Weir's settings first, then the user's `options`,
/// which may override any of them except the names in `reserved` (settings
/// Weir's guarantees depend on). Errors name the offending option.
pub(crate) fn client_config(
    base: &[(&str, String)],
    options: &KafkaOptions,
    reserved: &[&str],
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
        config.set(key, value.to_setting());
    }
    Ok(config)
}

/// Client context that logs librdkafka's messages through `tracing`.
#[derive(Debug, Clone)]
pub struct LogContext {
    /// Connector name put on every log line.
    pub connector: String,
}

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
        tracing::warn!(connector = %self.connector, "kafka client: {error}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_accept_strings_numbers_and_booleans() {
        let options: KafkaOptions = toml::from_str(
            "\"security.protocol\" = \"SASL_SSL\"\n\"linger.ms\" = 5\n\"enable.ssl.certificate.verification\" = false",
        )
        .unwrap();
        let config = client_config(&[("linger.ms", "0".into())], &options, &[]).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
    }

    #[test]
    fn reserved_options_are_refused() {
        let options: KafkaOptions = toml::from_str("\"enable.auto.commit\" = true").unwrap();
        let err = client_config(&[], &options, &["enable.auto.commit"]).unwrap_err();
        assert!(
            err.starts_with("option `enable.auto.commit` is managed by weir"),
            "{err}"
        );
    }
}
