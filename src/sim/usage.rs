//! `GET /backend-api/wham/usage` (PROTOCOL.md §9) and `GET /backend-api/codex/models`.

use super::state::World;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Quota of the calling account in the `/wham/usage` shape.
pub(crate) async fn wham_usage(State(_world): State<Arc<World>>) -> Response {
    "{}".into_response()
}

/// The model catalog.
pub(crate) async fn models(State(_world): State<Arc<World>>) -> Response {
    "{\"models\":[]}".into_response()
}
