//! The `/sim/` control API: the [`super::SimHandle`] operations over HTTP, for operators and
//! out-of-process tests.

use super::state::World;
use axum::Router;
use std::sync::Arc;

/// The `/sim/` routes.
pub(crate) fn router() -> Router<Arc<World>> {
    Router::new()
}
