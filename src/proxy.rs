//! The Responses proxy: `POST /v1/responses` from a client to `POST {upstream}/codex/responses`
//! with a leased account, bytes passed through unchanged and observed on the side.

pub mod observe;
pub mod request;
