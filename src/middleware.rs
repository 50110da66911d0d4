//! The layers every request passes through, assembled in one place: a body size limit
//! (`server.max_body_bytes`, answered with 413) and request tracing. Routing lives in
//! [`crate::router`]; nothing here knows about individual routes.

use crate::config::Config;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

/// Wraps the router with the daemon's layers.
pub fn apply(router: Router<AppState>, cfg: &Config) -> Router<AppState> {
    router.layer(DefaultBodyLimit::max(cfg.server.max_body_bytes)).layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &axum::http::Request<_>| tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())),
    )
}
