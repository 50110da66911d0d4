//! The admin API under `/admin`, behind its own admin key. (api skeleton: the routes land in
//! the next commits; the signatures below are the contract.)

use axum::Router;

/// The `/admin/*` routes, behind the admin key or a dashboard session.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}

/// `/healthz`, `/readyz` and `/metrics`, open, for the reverse proxy and Prometheus.
pub fn health_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}
