//! The admin API's routes and handlers, and the checks of the mutating
//! ones: bearer token, and no browser-forgeable request.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::health::{PipelineHealth, readiness};
use crate::plugin::{PluginRegistry, ReloadRules};
use crate::secrets::redact;

/// State shared by the handlers.
#[derive(Clone)]
pub(super) struct Shared {
    pub registry: Arc<PluginRegistry>,
    pub pipelines: Arc<Vec<PipelineHealth>>,
    pub token: Option<Arc<str>>,
    /// No token configured and `allow_unauthenticated_loopback` on a
    /// loopback address: mutations are open.
    pub open_loopback: bool,
    pub rules: Arc<ReloadRules>,
    pub metrics: Option<PrometheusHandle>,
}

pub(super) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/plugins", get(plugins))
        .route("/plugins/{name}", get(plugin))
        .route("/plugins/{name}/reload", post(reload))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

async fn live() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "live" }))
}

async fn ready(State(s): State<Shared>) -> Response {
    let readiness = readiness(&s.pipelines).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &readiness)
}

async fn metrics(State(s): State<Shared>) -> Response {
    match &s.metrics {
        Some(handle) => {
            crate::metrics::collect();
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
                .into_response()
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder was installed in this process",
        ),
    }
}

async fn plugins(State(s): State<Shared>) -> Response {
    json_response(StatusCode::OK, &json!({ "plugins": s.registry.snapshot() }))
}

async fn plugin(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match s.registry.plugin_snapshot(&name) {
        Some(p) => json_response(StatusCode::OK, &p),
        None => error(StatusCode::NOT_FOUND, format!("no plugin named `{name}`")),
    }
}

/// Body of `POST /plugins/{name}/reload` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// New file for the plugin, relative to the config file's directory.
    path: Option<PathBuf>,
}

/// `None` if the request may mutate, else the 401/403 response.
fn authorize(token: Option<&str>, open_loopback: bool, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = token else {
        if open_loopback {
            return None;
        }
        return Some(error(
            StatusCode::FORBIDDEN,
            "reloads through the admin API need [host.admin] token \
             (or allow_unauthenticated_loopback = true on a loopback address)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Constant time, so the token cannot be guessed byte by byte from
    // response times (`subtle` also hides where the first difference is).
    let matches = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())));
    if matches {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            r#"{"error":"a valid `Authorization: Bearer <token>` header is required"}"#,
        )
            .into_response(),
    )
}

/// `None` unless the request could have been sent by a web page (a form
/// post or a "simple" cross-origin request, which browsers send without
/// asking): only no body type or `application/json` is accepted, and no
/// request a browser marks as coming from another site.
fn refuse_browser_requests(headers: &HeaderMap) -> Option<Response> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let essence = kind
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if essence.as_deref() != Some("application/json") {
            return Some(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (`Content-Type: application/json`) or absent",
            ));
        }
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.eq_ignore_ascii_case("none") && !v.eq_ignore_ascii_case("same-origin"));
    if cross_site || headers.contains_key(header::ORIGIN) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "requests from web pages are refused",
        ));
    }
    None
}

async fn reload(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = refuse_browser_requests(&headers)
        .or_else(|| authorize(s.token.as_deref(), s.open_loopback, &headers))
    {
        return denied;
    }
    let request: ReloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("body must be empty or {{\"path\": \"...\"}}: {e}"),
                );
            }
        }
    };
    let registry = Arc::clone(&s.registry);
    let plugin = name.clone();
    let rules = Arc::clone(&s.rules);
    let done = tokio::task::spawn_blocking(move || {
        registry.reload_from_api(&plugin, request.path.as_deref(), &rules)
    })
    .await;
    match done {
        Ok(Ok(outcome)) => json_response(StatusCode::OK, &outcome),
        Ok(Err(e)) if e.is_unknown_plugin() => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) if e.is_refused_file() => json_response(
            StatusCode::FORBIDDEN,
            &json!({ "status": "refused", "error": redact(&e.to_string()) }),
        ),
        Ok(Err(e)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "status": "failed", "error": redact(&e.to_string()) }),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(k.clone(), v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn token_check() {
        let mut headers = HeaderMap::new();
        assert!(
            authorize(None, true, &headers).is_none(),
            "no token, open loopback allowed explicitly"
        );
        let closed = authorize(None, false, &headers).expect("no token: closed");
        assert_eq!(closed.status(), StatusCode::FORBIDDEN);
        assert!(authorize(Some("s3cret"), true, &headers).is_some());
        headers.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(authorize(Some("s3cret"), false, &headers).is_some());
        headers.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(authorize(Some("s3cret"), false, &headers).is_some());
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), false, &headers).is_none());
        headers.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), false, &headers).is_some());
    }

    #[test]
    fn browser_requests_are_refused() {
        for kind in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "text/plain;charset=UTF-8",
        ] {
            let refused = refuse_browser_requests(&with(&[(header::CONTENT_TYPE, kind)]))
                .unwrap_or_else(|| panic!("{kind} accepted"));
            assert_eq!(
                refused.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{kind}"
            );
        }
        let from_page = with(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert_eq!(
            refuse_browser_requests(&from_page).map(|r| r.status()),
            Some(StatusCode::FORBIDDEN)
        );
        let fetch = with(&[(
            header::HeaderName::from_static("sec-fetch-site"),
            "cross-site",
        )]);
        assert!(refuse_browser_requests(&fetch).is_some());
        assert!(refuse_browser_requests(&HeaderMap::new()).is_none());
        let json = with(&[(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")]);
        assert!(refuse_browser_requests(&json).is_none());
    }
}
