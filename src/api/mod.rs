//! The JSON API, version 1: routes, extractors and the error shape. Every
//! route needs a bearer token; handlers call the capability modules.

pub mod audit;
pub mod cases;
pub mod directory;
pub mod documents;
pub mod error;
pub mod extract;
pub mod insurance;
pub mod journal;
pub mod portal;
pub mod privacy;
pub mod records;
pub mod reports;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, StatusCode, header},
    routing::{get, post, put},
};
use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer};

use crate::{http::upload_limit, state::AppState};
use error::ApiError;

pub fn router(state: &AppState) -> Router<AppState> {
    guard(routes(state))
}

/// What every API answer gets, whatever the route: answers carry patient
/// data, so no cache keeps them; a panic still answers the standard 500.
pub fn guard<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        .layer(CatchPanicLayer::custom(error::panicked))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
}

fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/cases", get(cases::list).post(cases::create))
        .route("/cases/{id}", get(cases::get).patch(cases::update))
        .route("/cases/{id}/transition", post(cases::transition))
        .route("/cases/{id}/hold", post(cases::hold))
        .route("/cases/{id}/resume", post(cases::resume))
        .route("/cases/{id}/records/{kind}", put(cases::set_record))
        .route("/cases/{id}/specialist", put(cases::set_specialist))
        .route("/cases/{id}/consultation", put(cases::set_consultation))
        .route("/cases/{id}/opinions", post(cases::record_opinion))
        .route("/cases/{id}/comparison", put(cases::set_comparison))
        .route("/cases/{id}/decision", put(cases::set_decision))
        .route("/cases/{id}/portal", get(portal::summary))
        .route("/cases/{id}/portal-link", post(portal::send_link))
        .route("/cases/{id}/portal-links", axum::routing::delete(portal::withdraw_links))
        .route("/cases/{id}/portal/partners", post(portal::invite_partner))
        .route("/cases/{id}/portal/partners/{partner_id}", axum::routing::delete(portal::remove_partner))
        .route("/cases/{id}/consent", post(portal::paper_consent))
        .route("/cases/{id}/insurance", get(insurance::get_insurance).put(insurance::put_insurance))
        .route("/cases/{id}/records-requests", get(records::list_requests).post(records::create_request))
        .route("/records-requests/{id}", get(records::get_request).patch(records::update_request))
        .route("/records-requests/{id}/extension", post(records::extend_request))
        .route("/records-requests/{id}/receipts", post(records::receive))
        .route("/records-requests/{id}/letter", get(records::get_letter).post(records::save_letter))
        .route("/providers", get(records::list_providers).post(records::create_provider))
        .route("/providers/{id}", get(records::get_provider).put(records::update_provider))
        .route("/cases/{id}/notes", get(journal::notes).post(journal::add_note))
        .route("/cases/{id}/contacts", get(journal::contacts).post(journal::add_contact))
        .route("/cases/{id}/contacts/{contact_id}/done", post(journal::follow_up_done))
        .route(
            "/cases/{id}/documents",
            get(documents::list)
                .post(documents::upload)
                .layer(DefaultBodyLimit::max(upload_limit(&state.settings.documents))),
        )
        .route("/documents/{doc_id}", get(documents::get).patch(documents::update).delete(documents::delete))
        .route("/documents/{doc_id}/content", get(documents::content))
        .route("/documents/{doc_id}/restore", post(documents::restore))
        .route("/cases/{id}/export", get(privacy::export))
        .route("/cases/{id}/export.zip", get(privacy::export_archive))
        .route("/cases/{id}/erase", post(privacy::erase))
        .route("/specialists", get(directory::list_specialists).post(directory::create_specialist))
        .route("/specialists/{id}", get(directory::get_specialist).put(directory::update_specialist))
        .route("/users", get(directory::list_users))
        .route("/audit", get(audit::list))
        .route("/reports/overview", get(reports::overview))
        // Route-level, so the recorded route is the matched pattern.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::refusals::api))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
}
