//! Wires the simulator's routes; handlers live in the module of their endpoint.

use super::state::World;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// Largest request body accepted (Codex re-sends whole histories).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Every route of the simulator.
pub(crate) fn build(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/backend-api/codex/responses",
            post(super::responses::handle),
        )
        .route("/backend-api/wham/usage", get(super::usage::wham_usage))
        .route("/backend-api/codex/models", get(super::usage::models))
        .route("/oauth/token", post(super::oauth::token))
        .route("/oauth/authorize", get(super::oauth::authorize))
        .merge(super::control::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(world)
}
