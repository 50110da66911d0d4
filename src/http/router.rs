//! Every route of the daemon, wired in one place (and nothing else happens here): the model
//! routes, health, readiness and Prometheus metrics (handlers in `admin`), the admin API, the
//! dashboard and its "Sign in with ChatGPT" login routes (in `admin::login`). Layers are assembled in [`crate::http::middleware`].
//!
//! A path nothing serves, or a method a path does not serve, gets a JSON error in the client's
//! protocol (404; 405 with `Allow`), never an empty answer; the admin API has its own.

use crate::http::state::AppState;
use axum::Router;
use axum::routing::{get, head, post};

/// Builds the whole application router, mounted under `server.path_prefix` if one is set.
pub fn build(state: AppState) -> Router {
    let cfg = state.config();
    let routes = Router::new()
        .route("/v1/responses", post(crate::proxy::responses))
        .route("/responses", post(crate::proxy::responses))
        .route("/v1/models", get(crate::proxy::models))
        .route("/models", get(crate::proxy::models))
        .route("/v1/models/{id}", get(crate::proxy::model))
        .route(
            "/v1/chat/completions",
            post(crate::translate::route::chat_completions),
        )
        .route("/v1/messages", post(crate::translate::route::messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::translate::route::count_tokens),
        )
        .route("/", head(crate::translate::route::hello))
        .route("/api/hello", head(crate::translate::route::hello))
        .merge(crate::http::admin::health_router())
        .merge(crate::dashboard::router())
        .merge(crate::http::admin::login::router(
            &cfg,
            state.upstream().client().clone(),
        ))
        // Every route so far; the admin API, merged next, keeps its own.
        .method_not_allowed_fallback(crate::proxy::upgrade::or_wrong_method)
        .merge(crate::http::admin::router())
        .fallback(crate::translate::route::no_route);
    let prefix = cfg.server.path_prefix.trim_end_matches('/');
    let app = if prefix.is_empty() {
        routes
    } else {
        Router::new()
            .nest(prefix, routes)
            .fallback(crate::translate::route::no_route)
    };
    crate::http::middleware::apply(app.with_state(state), &cfg)
}
