//! The short chaos run inside the suite: the real daemon (`rotor-lab serve`) as a child process
//! against the in-process simulator, 12 accounts, 12 concurrent clients in all three protocols,
//! about a minute of load with injected 429s, 401s, 5xx, premature closes, Cloudflare challenges
//! and resets, and one SIGKILL + restart mid-load. Same assertions as `rotor-lab chaos`.

use rotor_lab::chaos::load::{Kind, Outcome, classify};
use rotor_lab::chaos::{ChaosOptions, chaos};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_storm_with_a_sigkill_leaves_nothing_broken() {
    let opts = ChaosOptions {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_rotor-lab")),
        duration: Duration::from_secs(60),
        accounts: 12,
        concurrency: 12,
        ..ChaosOptions::default()
    };
    let report = chaos(&opts).await.expect("the chaos run completes");
    println!("{}", report.render());
    assert!(
        report.records.len() > 100,
        "the load ran: {} requests",
        report.records.len()
    );
    assert!(
        report.passed(),
        "chaos checks failed:\n{}",
        report.failures().join("\n")
    );
}

/// The classifier is what makes the chaos verdict meaningful, so it is tested on its own:
/// a stream without a terminal event, a 401, or an error without the protocol's shape are
/// violations; a terminal error event or a 429 with Retry-After are correct protocol errors.
#[test]
fn the_classifier_tells_protocol_errors_from_violations() {
    let completed =
        b"data: {\"type\":\"response.created\"}\n\ndata: {\"type\":\"response.completed\"}\n\n";
    assert_eq!(
        classify(Kind::ResponsesStream, 200, false, completed),
        Outcome::Success
    );
    let failed = b"data: {\"type\":\"response.failed\"}\n\n";
    assert!(matches!(
        classify(Kind::ResponsesStream, 200, false, failed),
        Outcome::ProtocolError(_)
    ));
    let cut = b"data: {\"type\":\"response.output_text.delta\"}\n\n";
    assert!(matches!(
        classify(Kind::ResponsesStream, 200, false, cut),
        Outcome::Violation(_)
    ));
    assert!(matches!(
        classify(Kind::ChatStream, 200, false, b"data: {\"choices\":[]}\n\n"),
        Outcome::Violation(_)
    ));
    assert_eq!(
        classify(
            Kind::ChatStream,
            200,
            false,
            b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"
        ),
        Outcome::Success
    );
    assert_eq!(
        classify(
            Kind::MessagesStream,
            200,
            false,
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        ),
        Outcome::Success
    );
    let openai_err =
        br#"{"error":{"message":"all accounts exhausted","type":"usage_limit_reached"}}"#;
    assert!(matches!(
        classify(Kind::Chat, 429, true, openai_err),
        Outcome::ProtocolError(_)
    ));
    assert!(
        matches!(
            classify(Kind::Chat, 429, false, openai_err),
            Outcome::Violation(_)
        ),
        "429 needs Retry-After"
    );
    assert!(
        matches!(
            classify(Kind::Chat, 401, false, openai_err),
            Outcome::Violation(_)
        ),
        "never 401 for a valid key"
    );
    assert!(
        matches!(
            classify(Kind::Messages, 503, false, openai_err),
            Outcome::Violation(_)
        ),
        "Anthropic shape needed"
    );
    let anthropic_err = br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#;
    assert!(matches!(
        classify(Kind::Messages, 529, false, anthropic_err),
        Outcome::ProtocolError(_)
    ));
    assert!(matches!(
        classify(Kind::Responses, 504, false, b"<html>"),
        Outcome::Violation(_)
    ));
}
