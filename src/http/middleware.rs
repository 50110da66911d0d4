//! The layers every request passes through, assembled in one place: a body size limit
//! (`server.max_body_bytes`, answered with 413), a fresh request id, and one `request` tracing
//! span per request. Routing lives in [`crate::http::router`]; nothing here knows about individual
//! routes.
//!
//! The span carries `request_id`, `client` and `scheme` (from `X-Forwarded-For` /
//! `X-Forwarded-Proto` only when `server.trust_forwarded_headers` is set, else the TCP peer and
//! `http`), plus `account_id`, which stays empty until the proxy picks an account and calls
//! [`record_account`]. Every log line written while the request is handled — including while its
//! body streams — sits inside that span, so it carries those fields.

use crate::config::Config;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use std::net::SocketAddr;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The daemon's id of one request (a random UUID, never taken from the client), stored in the
/// request's extensions so handlers stamp the same id on what they record (the admin request
/// list) as the log span carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh random (v4) id from the thread's userspace RNG, seeded once: no `getrandom`
    /// syscall per request.
    pub fn fresh() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        Self(uuid.simple().to_string())
    }
}

/// Wraps the router with the daemon's layers.
pub fn apply(router: Router, cfg: &Config) -> Router {
    let server = cfg.server.clone();
    let trace = TraceLayer::new_for_http()
        .make_span_with(move |req: &Request| {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
            let origin = server.client_origin(req.headers(), peer);
            let id = req
                .extensions()
                .get::<RequestId>()
                .map_or("", |id| id.0.as_str());
            tracing::info_span!(
                "request",
                request_id = %id,
                account_id = tracing::field::Empty,
                client = %origin.ip,
                scheme = origin.scheme,
                method = %req.method(),
                path = %req.uri().path(),
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    // Around the whole router, not on each route (`Router::layer`): a route's layered service
    // is boxed and cloned for every request, one allocation per layer, while a stack around
    // the router is cloned once per request as plain structs around the router's `Arc`.
    let layered = tower::ServiceBuilder::new()
        .layer(axum::middleware::map_request(assign_id))
        .layer(trace)
        .layer(DefaultBodyLimit::max(cfg.server.max_body_bytes))
        .service(router);
    Router::new().fallback_service(layered)
}

/// Gives the request its id (outermost layer, so the span sees it).
async fn assign_id(mut req: Request) -> Request {
    let id = RequestId::fresh();
    req.extensions_mut().insert(id);
    req
}

/// Records the account serving the current request on its `request` span, so every later log
/// line of the request names it. Call it where the lease is granted (inside the handler or the
/// body stream of the request).
pub fn record_account(account_id: &str) {
    tracing::Span::current().record("account_id", account_id);
}
