//! The HTTP application: shared state, the route tree, and serving with a
//! graceful shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::{
    api::{self, error::ApiError},
    db, web,
};

pub use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    let hsts = state.settings.server.hsts_max_age.as_secs();
    let router = Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api::router(&state))
        .merge(web::router(&state))
        .merge(web::portal::router(&state))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), read_whole_body))
        .layer(CatchPanicLayer::custom(api::error::panicked))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(PERMISSIONS_POLICY),
        ));
    let router = match HeaderValue::from_str(&format!("max-age={hsts}; includeSubDomains")) {
        Ok(value) if hsts > 0 => {
            router.layer(SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, value))
        }
        _ => router,
    };
    router
        // Spans name the route pattern, never the raw URI: query strings can
        // hold patient names.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .with_state(state)
}

/// Most a refused body is read past the limit before answering, so the
/// client, still sending, gets to read the 413 instead of a reset connection.
const DRAIN_AT_MOST: usize = 8 * 1024 * 1024;
const DRAIN_FOR_AT_MOST: Duration = Duration::from_secs(5);

/// Reads every request body in full, up to the size limit, before any check
/// or handler runs. A refusal that left a body unread (a wrong content type,
/// a missing token, an unknown id) would close the connection with data
/// still in it, and the client would see a reset instead of the answer.
async fn read_whole_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if crate::http::is_upload(request.method(), request.uri().path(), content_type) {
        // A document streams into storage as it arrives, within its own limit.
        return next.run(request).await;
    }
    let limit = state.settings.server.max_body_bytes;
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut collected = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
                .into_response();
        };
        if collected.len() + chunk.len() > limit {
            let mut drained = collected.len() + chunk.len();
            let _ = tokio::time::timeout(DRAIN_FOR_AT_MOST, async {
                while drained < DRAIN_AT_MOST {
                    match stream.next().await {
                        Some(Ok(more)) => drained += more.len(),
                        _ => break,
                    }
                }
            })
            .await;
            return if parts.uri.path().starts_with("/api/") {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is larger than {limit} bytes"),
                )
                .into_response()
            } else {
                web::error::too_large(limit)
            };
        }
        collected.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(collected.freeze()))).await
}

/// Nothing here needs the browser's sensors, payments or devices.
const PERMISSIONS_POLICY: &str =
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()";

/// Healthy means the database can keep a write, not only answer a read: an
/// instance whose disk is full must be taken out of rotation. A probe that
/// succeeded stands for a second; after a failure the next check probes again.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let status = match state.health.check(&state.db).await {
        Ok(()) => return (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(failed) => {
            tracing::warn!(error = %failed.message, "health check failed");
            match failed.kind {
                db::Failure::Unreachable => "database_unreachable",
                db::Failure::Storage | db::Failure::Other => "database_cannot_write",
            }
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": status })))
}

/// Serves until `shutdown` completes, then stops accepting and lets requests
/// in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reads = state.reads.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    // Reads served before the stop belong in the trail.
    reads.flush().await;
    served
}
