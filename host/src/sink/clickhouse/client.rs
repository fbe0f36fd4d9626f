//! Requests to ClickHouse's HTTP interface and the classes of its errors.
//!
//! The server answers an error with an HTTP status and a body starting
//! `Code: N` (`Code: 60, e.displayText() = DB::Exception: ...` on old
//! releases, `Code: 60. DB::Exception: ...` on current ones); the code
//! says whether retrying can help, whether the rows are at fault, or
//! neither.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url};

use super::config::RawClickhouseSinkConfig;
use crate::sink::SinkContext;
use crate::tls::TlsError;

/// What to do about a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Timeouts, lost connections, an overloaded server: try again.
    Retry,
    /// The data of a row is refused (a value that does not parse or fit):
    /// find the row and dead-letter it.
    Reject,
    /// Credentials, permissions, a missing table: stop.
    Fatal,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer (connect error, timeout, connection reset).
    #[error("{message}")]
    Transport {
        /// reqwest's message with its causes (its own is terse).
        message: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("HTTP {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's `Code: N`, if the body has one.
        code: Option<u32>,
        /// The body's first line(s), trimmed.
        message: String,
    },
}

/// Codes of errors about the data of a row (parsing, types, sizes).
const ROW_CODES: &[u32] = &[
    6, 25, 26, 27, 32, 33, 36, 38, 41, 49, 53, 69, 70, 72, 117, 131, 349, 691,
];
/// Codes worth retrying: timeouts, network, memory, too many queries or
/// parts, read-only replicas, Keeper / ZooKeeper trouble.
const RETRY_CODES: &[u32] = &[
    159, 164, 202, 203, 209, 210, 225, 236, 241, 242, 252, 319, 394, 425, 999,
];

impl RequestError {
    /// Whether retrying can help, the rows are at fault, or neither.
    pub fn class(&self) -> ErrorClass {
        match self {
            RequestError::Transport { .. } => ErrorClass::Retry,
            RequestError::Server { status, code, .. } => match code {
                Some(c) if ROW_CODES.contains(c) => ErrorClass::Reject,
                Some(c) if RETRY_CODES.contains(c) => ErrorClass::Retry,
                Some(_) => ErrorClass::Fatal,
                // A proxy or a server not yet ready, without a ClickHouse body.
                None if *status >= 500 || *status == 429 => ErrorClass::Retry,
                None => ErrorClass::Fatal,
            },
        }
    }
}

/// `Code: 60` → 60.
fn code_of(body: &str) -> Option<u32> {
    let rest = body.trim_start().strip_prefix("Code: ")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// One ClickHouse HTTP endpoint with its credentials and settings.
#[derive(Debug, Clone)]
pub struct HttpClient {
    http: Client,
    url: Url,
    user: Option<String>,
    password: Option<String>,
    settings: Vec<(String, String)>,
}

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `url` does not parse.
    #[error("invalid `url` `{url}`: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// TLS settings.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HTTP client.
    #[error("http client: {0}")]
    Http(String),
}

impl HttpClient {
    /// A client for the sink's settings.
    pub fn new(cfg: &RawClickhouseSinkConfig, ctx: &SinkContext) -> Result<Self, ClientError> {
        let url = Url::parse(&cfg.url).map_err(|e| ClientError::Url {
            url: cfg.url.clone(),
            message: e.to_string(),
        })?;
        let mut builder = Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")));
        if url.scheme() == "https" {
            let tls = cfg
                .tls
                .clone()
                .unwrap_or_default()
                .client_config(&ctx.config_dir)?;
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(HttpClient {
            http,
            url,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            settings: cfg
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// Run `query` with `body` (POST) and return the response body. With
    /// an empty body the query itself is the body (a POST without one has
    /// no `Content-Length`, which old servers refuse).
    pub async fn query(&self, query: &str, body: String) -> Result<String, RequestError> {
        let mut url = self.url.clone();
        let body = {
            let mut pairs = url.query_pairs_mut();
            let body = if body.is_empty() {
                query.to_owned()
            } else {
                pairs.append_pair("query", query);
                body
            };
            for (k, v) in &self.settings {
                pairs.append_pair(k, v);
            }
            body
        };
        let mut req = self.http.post(url).body(body);
        if let Some(user) = &self.user {
            req = req.basic_auth(user, self.password.as_deref());
        } else if let Some(password) = &self.password {
            req = req.basic_auth("default", Some(password));
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        if status == StatusCode::OK {
            return Ok(text);
        }
        let message = text.trim().replace('\n', " ");
        Err(RequestError::Server {
            status: status.as_u16(),
            code: code_of(&text),
            message,
        })
    }
}

/// A transport error, its message with its causes.
fn transport(source: reqwest::Error) -> RequestError {
    RequestError::Transport {
        message: transport_message(&source),
        source,
    }
}

/// A transport error with its causes (reqwest's own message is terse).
fn transport_message(e: &reqwest::Error) -> String {
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        m.push_str(": ");
        m.push_str(&s.to_string());
        source = s.source();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, body: &str) -> RequestError {
        RequestError::Server {
            status,
            code: code_of(body),
            message: body.to_owned(),
        }
    }

    #[test]
    fn server_codes_of_old_and_new_releases_classify() {
        assert_eq!(
            code_of("Code: 60, e.displayText() = DB::Exception: x"),
            Some(60)
        );
        assert_eq!(code_of("Code: 131. DB::Exception: Too large"), Some(131));
        assert_eq!(code_of("Bad Gateway"), None);
        assert_eq!(
            server(500, "Code: 131. DB::Exception: Too large value").class(),
            ErrorClass::Reject
        );
        assert_eq!(
            server(500, "Code: 241. Memory limit").class(),
            ErrorClass::Retry
        );
        assert_eq!(
            server(401, "Code: 192, Unknown user").class(),
            ErrorClass::Fatal
        );
        assert_eq!(
            server(404, "Code: 60. Table doesn't exist").class(),
            ErrorClass::Fatal
        );
        assert_eq!(
            server(503, "Service Unavailable").class(),
            ErrorClass::Retry
        );
        // Any reqwest error that is not an answer (here: a URL it refuses).
        let no_answer = reqwest::Client::new().get("not a url").build().unwrap_err();
        assert_eq!(transport(no_answer).class(), ErrorClass::Retry);
    }
}
