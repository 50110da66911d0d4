//! Reading the claims of a ChatGPT access or id token (docs/protocol.md §8), the one reader the
//! pool and the daemon share. No signature check — upstream checks every token it is sent; the
//! pool only needs to know when a token expires, when it was issued and whose it is (account
//! id, user id, plan, email), to schedule the refresh and find duplicates. A string that is not
//! a JWT is an error the caller can show, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::{Identity, UnixMs};

/// The namespaced claim holding the ChatGPT account, user and plan.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// The namespaced claim holding the profile (email) when there is no top-level `email`.
const PROFILE_CLAIM: &str = "https://api.openai.com/profile";

/// The claims of one token that the daemon uses. Every field is optional: id tokens and access
/// tokens carry different subsets, and a missing claim must not make a token unusable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// When the token stops working (`exp`, converted to unix ms) — drives proactive refresh.
    pub exp: Option<UnixMs>,
    /// When upstream issued the token (`iat`, unix ms): orders two token sets of one account
    /// even when neither says when it was last refreshed.
    pub iat: Option<UnixMs>,
    /// The account's email (`email`, else `profile.email`) — shown to operators.
    pub email: Option<String>,
    /// The workspace id sent upstream as `chatgpt-account-id`; half of the dedup key.
    pub chatgpt_account_id: Option<String>,
    /// The subscription plan (`plus`, `pro`, `team`…) — routes models to plans.
    pub chatgpt_plan_type: Option<String>,
    /// The user inside the workspace (`chatgpt_user_id`, else `user_id`): team members share an
    /// account id and differ only by this, so it is the other half of the dedup key.
    pub chatgpt_user_id: Option<String>,
}

/// Why a string could not be read as a JWT. Messages never contain the token itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error("not a JWT: expected three dot-separated parts")]
    Shape,
    /// The payload part is not base64url.
    #[error("not a JWT: the payload is not base64url")]
    Base64,
    /// The payload is not a JSON object.
    #[error("not a JWT: the payload is not a JSON object")]
    Json,
}

impl Claims {
    /// Decodes the payload of `token` (an optional `Bearer ` prefix is ignored) without
    /// checking the signature.
    pub fn decode(token: &str) -> Result<Claims, JwtError> {
        let payload = payload(token)?;
        let auth = payload.get(AUTH_CLAIM);
        let auth_str = |key: &str| auth.and_then(|a| a.get(key)).and_then(non_empty_str);
        let email = payload.get("email").and_then(non_empty_str).or_else(|| {
            payload
                .get(PROFILE_CLAIM)
                .and_then(|p| p.get("email"))
                .and_then(non_empty_str)
        });
        Ok(Claims {
            exp: payload.get("exp").and_then(seconds_to_ms),
            iat: payload.get("iat").and_then(seconds_to_ms),
            email,
            chatgpt_account_id: auth_str("chatgpt_account_id"),
            chatgpt_plan_type: auth_str("chatgpt_plan_type"),
            chatgpt_user_id: auth_str("chatgpt_user_id").or_else(|| auth_str("user_id")),
        })
    }

    /// Fills every claim this one lacks from `other` (an access token's claims completed by
    /// the id token's, which is where email and plan usually live).
    pub fn or(self, other: Claims) -> Claims {
        Claims {
            exp: self.exp.or(other.exp),
            iat: self.iat.or(other.iat),
            email: self.email.or(other.email),
            chatgpt_account_id: self.chatgpt_account_id.or(other.chatgpt_account_id),
            chatgpt_plan_type: self.chatgpt_plan_type.or(other.chatgpt_plan_type),
            chatgpt_user_id: self.chatgpt_user_id.or(other.chatgpt_user_id),
        }
    }

    /// The identity the claims name; `label` is never set.
    pub fn identity(self) -> Identity {
        Identity {
            email: self.email,
            plan: self.chatgpt_plan_type,
            chatgpt_account_id: self.chatgpt_account_id,
            chatgpt_user_id: self.chatgpt_user_id,
            label: None,
        }
    }
}

/// True if `token` has the shape of a JWT (three parts, JSON payload).
pub fn is_jwt(token: &str) -> bool {
    payload(token).is_ok()
}

/// The `exp` claim (as unix ms) of a JWT, if the token is a decodable JWT.
pub fn expires_at(token: &str) -> Option<UnixMs> {
    Claims::decode(token).ok()?.exp
}

/// The `iat` claim (as unix ms) of a JWT ([`Claims::iat`]).
pub fn issued_at(token: &str) -> Option<UnixMs> {
    Claims::decode(token).ok()?.iat
}

/// The identity a token names ([`Claims::identity`]); a token that is not a JWT names none.
pub fn identity(token: &str) -> Identity {
    Claims::decode(token)
        .map(Claims::identity)
        .unwrap_or_default()
}

/// The identity a refreshed pair of tokens names: the id token's claims completed by the access
/// token's, except the plan, which the access token (the fresher of the two) decides.
pub fn identity_of(access_token: &str, id_token: Option<&str>) -> Identity {
    let mut who = id_token.map(identity).unwrap_or_default();
    who.learn(identity(access_token));
    who
}

/// Builds an unsigned JWT carrying `payload` (signature part `sig`). Used by the simulator,
/// tests and token-only imports of hand-made tokens; upstream never sees these.
pub fn encode_unsigned(payload: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{body}.sig")
}

/// The decoded JSON payload of a JWT.
fn payload(token: &str) -> Result<serde_json::Map<String, Value>, JwtError> {
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let mut parts = token.split('.');
    let (Some(_header), Some(body), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    // Tolerate padded payloads: some issuers (and hand-made test tokens) include `=`.
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Json),
    }
}

/// A non-empty string claim.
fn non_empty_str(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A time claim in unix seconds (integer or float) → unix ms.
fn seconds_to_ms(v: &Value) -> Option<UnixMs> {
    if let Some(s) = v.as_i64() {
        return s.checked_mul(1000);
    }
    v.as_f64()
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| (f * 1000.0) as UnixMs)
}

#[cfg(test)]
mod tests;
