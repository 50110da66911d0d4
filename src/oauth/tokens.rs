//! What the token endpoint answers a completed login: the tokens an account record is made of
//! (`accounts::login_record`), apart from the login flow that obtains them ([`super::login`]).

use serde::Deserialize;

/// Tokens obtained by a completed login.
#[derive(Clone, Deserialize)]
pub struct LoginTokens {
    /// Access JWT.
    pub access_token: String,
    /// Refresh token (present because `offline_access` was requested).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Id JWT carrying email and plan.
    #[serde(default)]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for LoginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginTokens { <redacted> }")
    }
}
