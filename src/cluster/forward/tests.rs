//! Signing and checking the forwarded header: every field the signature covers, changed alone,
//! is refused; so are a wrong secret, an old or future time, and a second hop.

use super::*;

const NOW: i64 = 1_780_000_000_000;
const PATH: &str = "/v1/responses";
const BODY: &[u8] = br#"{"model":"gpt-5.5","input":"hi"}"#;

fn secret(s: &str) -> ClusterSecret {
    ClusterSecret::new(s.as_bytes().to_vec()).expect("long enough")
}

fn fwd() -> Forwarded {
    Forwarded {
        node: "node-a".into(),
        ts_ms: NOW,
        hop: 1,
        key: Some("team key; with=odd chars".into()),
        account: Some("acct-1".into()),
    }
}

fn signed() -> String {
    sign(
        &secret("0123456789abcdef-secret-0123456789"),
        "POST",
        PATH,
        &fwd(),
        BODY,
    )
}

fn check(value: &str, body: &[u8]) -> Result<Forwarded, Refusal> {
    verify(
        &secret("0123456789abcdef-secret-0123456789"),
        "POST",
        PATH,
        value,
        body,
        NOW + 5,
    )
}

#[test]
fn the_mac_is_hmac_sha256_by_rfc_4231() {
    let k = ClusterSecret(Secret::new(vec![0x0b; 20]));
    assert_eq!(
        hex(&mac(&k, b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    let k = ClusterSecret(Secret::new(b"Jefe".to_vec()));
    assert_eq!(
        hex(&mac(&k, b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block is hashed first (RFC 4231 case 6).
    let k = ClusterSecret(Secret::new(vec![0xaa; 131]));
    assert_eq!(
        hex(&mac(
            &k,
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn a_signed_header_round_trips() {
    assert_eq!(check(&signed(), BODY), Ok(fwd()));
    let open = Forwarded {
        key: None,
        account: None,
        ..fwd()
    };
    let v = sign(
        &secret("0123456789abcdef-secret-0123456789"),
        "POST",
        PATH,
        &open,
        BODY,
    );
    assert!(v.contains("key=- account=-"), "{v}");
    assert_eq!(check(&v, BODY), Ok(open));
}

#[test]
fn a_changed_body_path_method_or_secret_is_refused() {
    let v = signed();
    assert_eq!(check(&v, b"{}"), Err(Refusal::BadSignature));
    let s = secret("0123456789abcdef-secret-0123456789");
    assert_eq!(
        verify(&s, "POST", "/v1/chat/completions", &v, BODY, NOW),
        Err(Refusal::BadSignature)
    );
    assert_eq!(
        verify(&s, "PUT", PATH, &v, BODY, NOW),
        Err(Refusal::BadSignature)
    );
    assert_eq!(
        verify(
            &secret("another-secret-0123456-0123456789ab"),
            "POST",
            PATH,
            &v,
            BODY,
            NOW
        ),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn every_signed_field_changed_alone_is_refused() {
    let v = signed();
    let other = |field: &str, to: &str| -> String {
        v.split(' ')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k == field => format!("{k}={to}"),
                _ => p.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (field, to) in [
        ("node", b64("node-b")),
        ("ts", (NOW + 1).to_string()),
        ("hop", "0".into()),
        ("key", b64("admin")),
        ("key", "-".into()),
        ("account", b64("acct-2")),
        ("account", "-".into()),
    ] {
        let tampered = other(field, &to);
        assert_ne!(tampered, v, "{field}");
        assert_eq!(
            check(&tampered, BODY),
            Err(Refusal::BadSignature),
            "{field}={to}"
        );
    }
}

#[test]
fn an_old_or_future_header_is_refused_as_a_replay() {
    let s = secret("0123456789abcdef-secret-0123456789");
    let v = signed();
    let at = |now| verify(&s, "POST", PATH, &v, BODY, now);
    assert!(at(NOW + MAX_SKEW_MS).is_ok());
    assert!(at(NOW - MAX_SKEW_MS).is_ok());
    assert_eq!(
        at(NOW + MAX_SKEW_MS + 1),
        Err(Refusal::Skew(MAX_SKEW_MS + 1))
    );
    assert_eq!(
        at(NOW - MAX_SKEW_MS - 1),
        Err(Refusal::Skew(-MAX_SKEW_MS - 1))
    );
}

#[test]
fn a_second_hop_is_refused_even_when_signed() {
    let s = secret("0123456789abcdef-secret-0123456789");
    for hop in [0, MAX_HOPS + 1] {
        let v = sign(&s, "POST", PATH, &Forwarded { hop, ..fwd() }, BODY);
        assert_eq!(check(&v, BODY), Err(Refusal::TooManyHops(hop)));
    }
}

#[test]
fn malformed_headers_say_what_is_wrong_without_the_secret() {
    for bad in [
        "",
        "v2 node=x",
        "v1 node=bm9kZQ ts=x hop=1 key=- account=- sig=00",
        "v1 node=bm9kZQ ts=1 hop=1 key=- account=- sig=zz",
        "v1 node=bm9kZQ ts=1 hop=1 key=- account=-",
        &format!("{} extra=1", signed()),
    ] {
        let e = check(bad, BODY).expect_err(bad);
        assert!(matches!(e, Refusal::Malformed(_)), "{bad}: {e:?}");
        assert!(!e.to_string().contains("secret-"), "{e}");
    }
    assert!(!Refusal::BadSignature.to_string().contains("0123456789"));
}

#[test]
fn the_secret_is_read_from_the_file_or_the_variable_and_never_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("secret");
    std::fs::write(
        &file,
        "Y2x1c3Rlci1jaGFvcy1mb3J3YXJkaW5nLXNlY3JldC0wMTIzNDU2Nzg5\n",
    )
    .expect("write");
    let env = |name: &str| {
        (name == "MY_SECRET").then(|| "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=".to_owned())
    };
    let mut cfg = ClusterConfig {
        secret_env: "MY_SECRET".into(),
        ..ClusterConfig::default()
    };
    let from_env = ClusterSecret::load(&cfg, &env).expect("env");
    assert_eq!(format!("{from_env:?}"), "ClusterSecret(***)");
    cfg.secret_file = Some(file);
    let from_file = ClusterSecret::load(&cfg, &env).expect("file");
    let v = sign(&from_file, "POST", PATH, &fwd(), BODY);
    assert_eq!(
        verify(&from_env, "POST", PATH, &v, BODY, NOW),
        Err(Refusal::BadSignature),
        "the file wins over the variable"
    );
    cfg.secret_file = None;
    cfg.secret_env = "UNSET".into();
    let e = ClusterSecret::load(&cfg, &env).expect_err("unset");
    assert!(e.contains("UNSET"), "{e}");
    let short = |_: &str| Some("c2hvcnQ=".to_owned());
    let e = ClusterSecret::load(&cfg, &short).expect_err("short");
    assert!(e.contains("fewer than") && !e.contains("c2hvcnQ"), "{e}");
}
