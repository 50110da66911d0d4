//! Client authentication for the model routes: the pool key arrives as
//! `Authorization: Bearer KEY` (Codex CLI, the OpenAI and Anthropic SDKs) or `x-api-key: KEY`
//! (Claude Code). The comparison itself (constant time), per-key rpm and concurrency limits
//! live in [`crate::keys::KeyStore`]; this maps its answer to the client's error.

use crate::http::errors::ApiError;
use crate::http::state::AppState;
use crate::keys::{KeyPermit, KeyRejection};
use http::HeaderMap;

/// A granted client key; holding it keeps one slot of the key's concurrency limit.
pub type Permit = KeyPermit;

/// The key presented by the client, if any.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// Authenticates a request. With no key configured (`is_open`, allowed only on loopback) every
/// request passes without a permit.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Permit>, ApiError> {
    let keys = state.keys();
    if keys.is_open() {
        return Ok(None);
    }
    let key = presented(headers).ok_or(ApiError::Unauthorized)?;
    match keys.authenticate(key) {
        Ok(permit) => Ok(Some(permit)),
        Err(KeyRejection::Unknown) => Err(ApiError::Unauthorized),
        Err(KeyRejection::Disabled) => Err(ApiError::Forbidden("this API key is disabled".into())),
        Err(KeyRejection::RateLimited { retry_after_secs }) => {
            Err(ApiError::KeyRateLimited { retry_after_secs })
        }
        Err(KeyRejection::TooManyConcurrent) => Err(ApiError::KeyRateLimited {
            retry_after_secs: 1,
        }),
    }
}

/// The key's name for records (never the key itself).
pub fn permit_name(p: &Permit) -> String {
    p.name().to_owned()
}
