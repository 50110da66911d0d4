//! `POST /oauth/token` (refresh and authorization-code grants) and `GET /oauth/authorize`.

use super::state::World;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The token endpoint.
pub(crate) async fn token(State(_world): State<Arc<World>>) -> Response {
    "{}".into_response()
}

/// The authorization endpoint.
pub(crate) async fn authorize(State(_world): State<Arc<World>>) -> Response {
    "{}".into_response()
}
