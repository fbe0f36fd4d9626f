//! The admin API's routes and handlers, and the bearer-token check of the
//! mutating ones.

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

use super::health::{PipelineHealth, readiness};
use crate::plugin::{PluginRegistry, ReloadTrigger};

/// State shared by the handlers.
#[derive(Clone)]
pub(super) struct Shared {
    pub registry: Arc<PluginRegistry>,
    pub pipelines: Arc<Vec<PipelineHealth>>,
    pub token: Option<Arc<str>>,
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
        Some(handle) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
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

/// Constant-time comparison, so the token cannot be guessed byte by byte
/// from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` if the request may mutate, else the 401 response.
fn authorize(token: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let token = token?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => None,
        _ => Some(
            (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, "Bearer"),
                    (header::CONTENT_TYPE, "application/json"),
                ],
                r#"{"error":"a valid `Authorization: Bearer <token>` header is required"}"#,
            )
                .into_response(),
        ),
    }
}

async fn reload(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = authorize(s.token.as_deref(), &headers) {
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
    let done = tokio::task::spawn_blocking(move || {
        registry.reload(&plugin, request.path.as_deref(), ReloadTrigger::Api)
    })
    .await;
    match done {
        Ok(Ok(outcome)) => json_response(StatusCode::OK, &outcome),
        Ok(Err(e)) if e.is_unknown_plugin() => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "status": "failed", "error": e.to_string() }),
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

    #[test]
    fn token_check() {
        let mut headers = HeaderMap::new();
        assert!(
            authorize(None, &headers).is_none(),
            "no token configured: open"
        );
        assert!(authorize(Some("s3cret"), &headers).is_some());
        headers.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_some());
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_none());
        headers.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_some());
    }
}
