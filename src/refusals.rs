//! Records refused requests in the audit trail, in one place for the whole
//! JSON API and the staff pages: a layer around every matched route looks at
//! the answer and writes an `access.denied` entry for each refusal.
//!
//! The entry names the route pattern (never the raw address, whose query
//! string can hold patient names), the method, the status, the client address
//! and — when the request got as far as identifying someone — the user. The
//! extractors that identify users (`api::extract::Caller`, `web::Staff`)
//! leave the actor in the [`ActingUser`] slot this layer puts in the request.

use std::sync::{Arc, Mutex};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{StatusCode, request::Parts},
    middleware::Next,
    response::Response,
};

use crate::{
    audit::{self, Subject},
    auth::Actor,
    http::client_ip,
    state::AppState,
};

/// Who a request turned out to be from, filled in by the extractor that
/// authenticated it.
#[derive(Clone, Default)]
pub struct ActingUser(Arc<Mutex<Option<Actor>>>);

impl ActingUser {
    /// Notes the authenticated actor of the request `parts` belong to.
    pub fn note(parts: &Parts, actor: &Actor) {
        if let Some(slot) = parts.extensions.get::<ActingUser>()
            && let Ok(mut inner) = slot.0.lock()
        {
            *inner = Some(actor.clone());
        }
    }

    fn take(&self) -> Option<Actor> {
        self.0.lock().ok().and_then(|mut inner| inner.take())
    }
}

/// For JSON API routes: a missing or bad token (401) and a refusal (403).
pub async fn api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    watch(&state, req, next, &[StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]).await
}

/// For staff pages: refusals (403). A 401 there is a failed sign-in, which
/// the sign-in page records itself; signed-out visitors are sent to sign in.
pub async fn pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    watch(&state, req, next, &[StatusCode::FORBIDDEN]).await
}

/// The case a refused request was about, so that the case's trail shows it.
async fn case_in_path(route: &str, parts: &mut Parts) -> Option<i32> {
    if !(route.starts_with("/api/v1/cases/{id}") || route.starts_with("/cases/{id}")) {
        return None;
    }
    crate::http::path_param(parts, "id").await?.parse().ok().filter(|id: &i32| *id > 0)
}

async fn watch(state: &AppState, req: Request, next: Next, refusals: &[StatusCode]) -> Response {
    let (mut parts, body) = req.into_parts();
    let route = parts.extensions.get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = parts.method.to_string();
    let ip = client_ip(&parts, state.settings.server.trust_forwarded_for);
    let case_id = case_in_path(&route, &mut parts).await;
    let slot = ActingUser::default();
    parts.extensions.insert(slot.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if !refusals.contains(&status) {
        return response;
    }
    let actor = match slot.take() {
        Some(mut actor) => {
            actor.ip = ip;
            actor
        }
        None => Actor::anonymous(ip),
    };
    let detail = serde_json::json!({ "route": route, "method": method, "status": status.as_u16() });
    // The answer stands whatever happens here: a refusal stays a refusal.
    let subject = Subject { case_id, ..Subject::named("route") };
    if let Err(err) = audit::record(&state.db, &actor, "access.denied", subject, detail).await {
        tracing::error!(error = %err, %route, "could not write the audit entry for a refused request");
    }
    response
}
