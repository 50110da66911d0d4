//! Unsigned JWTs (`alg: none`) carrying the claims Codex reads (docs/protocol.md §8). The
//! simulator never verifies a signature: it knows every token it issued and looks it up.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// Who a token is about.
pub(crate) struct Subject<'a> {
    /// `chatgpt_account_id` claim.
    pub account_id: &'a str,
    /// `chatgpt_user_id` claim.
    pub user_id: &'a str,
    /// `email` claim.
    pub email: &'a str,
    /// `chatgpt_plan_type` claim.
    pub plan: &'a str,
}

/// Builds `header.payload.` with the §8 claims, `exp`/`iat` in unix seconds and a `jti` that
/// makes every token unique.
pub(crate) fn mint(subject: &Subject<'_>, iat_secs: i64, exp_secs: i64, jti: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    let payload = json!({
        "iss": "https://auth.openai.com",
        "aud": ["https://api.openai.com/v1"],
        "sub": subject.user_id,
        "iat": iat_secs,
        "exp": exp_secs,
        "jti": jti,
        "email": subject.email,
        "email_verified": true,
        "https://api.openai.com/profile": {"email": subject.email, "email_verified": true},
        "https://api.openai.com/auth": {
            "chatgpt_account_id": subject.account_id,
            "chatgpt_plan_type": subject.plan,
            "chatgpt_user_id": subject.user_id,
            "user_id": subject.user_id,
        },
    });
    format!("{}.{}.", encode(&header), encode(&payload))
}

fn encode(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Decodes the payload of a token (no verification); `None` if it is not a JWT.
#[cfg(test)]
pub(crate) fn claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_carries_the_codex_claims() {
        let s = Subject {
            account_id: "acct-1",
            user_id: "user-1",
            email: "a@b.c",
            plan: "pro",
        };
        let t = mint(&s, 100, 200, "j1");
        assert!(t.starts_with("eyJ") && t.ends_with('.'));
        let c = claims(&t).expect("decodes");
        assert_eq!(c["exp"], 200);
        assert_eq!(c["email"], "a@b.c");
        assert_eq!(
            c["https://api.openai.com/auth"]["chatgpt_account_id"],
            "acct-1"
        );
        assert_eq!(c["https://api.openai.com/auth"]["chatgpt_plan_type"], "pro");
        assert_eq!(
            c["https://api.openai.com/auth"]["chatgpt_user_id"],
            "user-1"
        );
    }
}
