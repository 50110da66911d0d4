//! Reading the claims of a ChatGPT access or id token (docs/protocol.md §8). The daemon never
//! verifies signatures — upstream does that on every request — it only needs to know when a
//! token expires and whose it is (account id, user id, plan, email) so it can schedule the
//! refresh and find duplicates. A token that is not a JWT at all is an error the caller can
//! show, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rotor_actors::UnixMs;
use serde_json::Value;

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
            email: self.email.or(other.email),
            chatgpt_account_id: self.chatgpt_account_id.or(other.chatgpt_account_id),
            chatgpt_plan_type: self.chatgpt_plan_type.or(other.chatgpt_plan_type),
            chatgpt_user_id: self.chatgpt_user_id.or(other.chatgpt_user_id),
        }
    }
}

/// True if `token` has the shape of a JWT (three parts, JSON payload).
pub fn is_jwt(token: &str) -> bool {
    payload(token).is_ok()
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

/// `exp` in unix seconds (integer or float) → unix ms.
fn seconds_to_ms(v: &Value) -> Option<UnixMs> {
    if let Some(s) = v.as_i64() {
        return s.checked_mul(1000);
    }
    v.as_f64()
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| (f * 1000.0) as UnixMs)
}

/// Builds an unsigned JWT carrying `payload` (signature part `sig`). Used by the simulator,
/// tests and token-only imports of hand-made tokens; upstream never sees these.
pub fn encode_unsigned(payload: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{body}.sig")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_namespaced_claims_and_converts_exp_to_ms() {
        let t = encode_unsigned(&json!({
            "exp": 1_795_670_000,
            "https://api.openai.com/profile": {"email": "a@example.com"},
            "https://api.openai.com/auth": {
                "chatgpt_account_id": "acct-1", "chatgpt_plan_type": "plus", "user_id": "user-1"
            }
        }));
        let c = Claims::decode(&format!("Bearer {t}")).expect("decodes");
        assert_eq!(c.exp, Some(1_795_670_000_000));
        assert_eq!(c.email.as_deref(), Some("a@example.com"));
        assert_eq!(c.chatgpt_account_id.as_deref(), Some("acct-1"));
        assert_eq!(c.chatgpt_plan_type.as_deref(), Some("plus"));
        assert_eq!(c.chatgpt_user_id.as_deref(), Some("user-1"));
    }

    #[test]
    fn top_level_email_and_chatgpt_user_id_win_over_fallbacks() {
        let t = encode_unsigned(&json!({
            "email": "top@example.com",
            "https://api.openai.com/profile": {"email": "profile@example.com"},
            "https://api.openai.com/auth": {"chatgpt_user_id": "u-main", "user_id": "u-old"}
        }));
        let c = Claims::decode(&t).expect("decodes");
        assert_eq!(c.email.as_deref(), Some("top@example.com"));
        assert_eq!(c.chatgpt_user_id.as_deref(), Some("u-main"));
        assert_eq!(c.exp, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Claims::decode("rt_abc"), Err(JwtError::Shape));
        assert_eq!(Claims::decode("a.b.c.d"), Err(JwtError::Shape));
        assert_eq!(Claims::decode("a.!!!.c"), Err(JwtError::Base64));
        let not_object = format!("x.{}.y", URL_SAFE_NO_PAD.encode("[1,2]"));
        assert_eq!(Claims::decode(&not_object), Err(JwtError::Json));
        assert!(!is_jwt(""));
    }
}
