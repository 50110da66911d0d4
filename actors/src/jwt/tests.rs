//! The one JWT claims reader, on hand-made tokens: claims, fallbacks, and garbage refused.

use super::*;
use serde_json::json;

#[test]
fn reads_exp_from_a_jwt() {
    // header {"alg":"none"}, payload {"exp":1700000000,"sub":"x"}
    let tok = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDAsInN1YiI6IngifQ.sig";
    assert_eq!(expires_at(tok), Some(1_700_000_000_000));
    assert_eq!(expires_at("not-a-jwt"), None);
    assert_eq!(expires_at("a.!!!.c"), None);
}

#[test]
fn reads_identity_from_namespaced_claims_with_fallbacks() {
    // {"https://api.openai.com/auth":{"chatgpt_account_id":"acct","chatgpt_plan_type":"pro",
    //  "user_id":"u-old"},"https://api.openai.com/profile":{"email":"p@x.io"}}
    let tok = "e30.eyJodHRwczovL2FwaS5vcGVuYWkuY29tL2F1dGgiOnsiY2hhdGdwdF9hY2NvdW50X2lkIjoiYWNjdCIsImNoYXRncHRfcGxhbl90eXBlIjoicHJvIiwidXNlcl9pZCI6InUtb2xkIn0sImh0dHBzOi8vYXBpLm9wZW5haS5jb20vcHJvZmlsZSI6eyJlbWFpbCI6InBAeC5pbyJ9fQ.sig";
    let id = identity(tok);
    assert_eq!(id.chatgpt_account_id.as_deref(), Some("acct"));
    assert_eq!(id.plan.as_deref(), Some("pro"));
    assert_eq!(id.chatgpt_user_id.as_deref(), Some("u-old"));
    assert_eq!(id.email.as_deref(), Some("p@x.io"));
    assert_eq!(identity("opaque-token"), Identity::default());
}

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
