//! The HTTP application: shared state, the route tree, and serving with a
//! graceful shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::{api, cases::store::CaseRules, config::Settings, db, web};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub rules: Arc<CaseRules>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: Settings) -> Self {
        let rules = CaseRules { levels: settings.service_levels(), defaults: settings.cases.clone() };
        Self { db, settings: Arc::new(settings), rules: Arc::new(rules) }
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api::router(&state))
        .merge(web::router(&state))
        .layer(DefaultBodyLimit::max(body_limit))
        // Spans name the route pattern, never the raw URI: query strings can
        // hold patient names.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if db::ping(&state.db).await {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "database_unreachable" })))
    }
}

/// Serves until `shutdown` completes, then stops accepting and lets requests
/// in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
