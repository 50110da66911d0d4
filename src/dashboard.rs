//! The operator dashboard at `/`. (api skeleton: the page lands in the next commits.)

use axum::Router;

/// `/`, `/assets/*`, `/login` and `/logout`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}
