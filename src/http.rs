//! Pieces of HTTP handling shared by the JSON API and the staff pages: the
//! client's address and path parameters. Below `api`, `web` and `refusals`.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use crate::state::AppState;

/// The client's address for the audit log.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The client's address, as [`client_ip`] finds it.
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state.settings.server.trust_forwarded_for)))
    }
}

/// The first field of a query string or form body whose name or value holds
/// a NUL character (no text column on either database can store one), named
/// printably; `None` when there is none.
pub fn field_with_nul(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "\\0"))
}

/// A named parameter of the matched route, as written in the address.
pub async fn path_param(parts: &mut Parts, wanted: &str) -> Option<String> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params.iter().find(|(name, _)| *name == wanted).map(|(_, value)| value.to_string())
}

/// A named id of the matched route: a positive number, or `None` (which
/// names no row, so answers as a missing one).
pub async fn path_id(parts: &mut Parts, wanted: &str) -> Option<i32> {
    path_param(parts, wanted).await.and_then(|value| value.parse::<i32>().ok()).filter(|id| *id > 0)
}
