//! The envelope on the forwarding hop, as I/O (its framing is [`crate::cluster::envelope`]):
//! the peer wraps its collected answer to a forwarded `stream: false` request in it, the
//! forwarding node unwraps it, bounding every silence of the peer before the real head by
//! [`head_bound`](super::head_bound) (docs/cluster.md "Requests across nodes").

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use super::{PeerAnswer, head_bound};
use crate::cluster::envelope::{self, Opening, Read};
use crate::http::state::AppState;

/// Whether a peer's answer is enveloped.
pub(super) fn is_envelope(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == envelope::CONTENT_TYPE.as_bytes())
}

/// Reads an enveloped answer up to the real answer's head, each chunk (a keepalive, most of
/// them) within `bound` of the last.
pub(super) async fn unwrap(resp: reqwest::Response, bound: Duration) -> Result<PeerAnswer, String> {
    let mut chunks = resp.bytes_stream();
    let mut opening = Opening::default();
    loop {
        let chunk = match tokio::time::timeout(bound, chunks.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => return Err(crate::upstream::chain(&e)),
            Ok(None) => return Err("the peer ended its answer before its head".into()),
            Err(_) => {
                return Err(format!(
                    "the peer went silent for {} before its answer's head",
                    humantime::format_duration(bound)
                ));
            }
        };
        let (head, rest) = match opening.feed(&chunk) {
            Read::More => continue,
            Read::Bad(why) => return Err(format!("the peer's envelope is malformed: {why}")),
            Read::Head(head, rest) => (head, rest),
        };
        let status = StatusCode::from_u16(head.status).map_err(|_| "the peer's status")?;
        let mut headers = HeaderMap::with_capacity(head.headers.len());
        for (name, value) in head.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) else {
                return Err("the peer's envelope carries an invalid header".into());
            };
            headers.append(name, value);
        }
        let first = (!rest.is_empty()).then_some(Ok(rest));
        let body = futures::stream::iter(first).chain(chunks).boxed();
        return Ok(PeerAnswer {
            status,
            headers,
            body,
        });
    }
}

/// The answer to a forwarded `stream: false` request that asked for the envelope: `200`
/// [`envelope::CONTENT_TYPE`] at once, a keepalive every half [`head_bound`] while `answer`
/// (the pipeline's collected answer) is made, then its head as one line and its body.
pub fn enveloped(
    state: &AppState,
    answer: impl Future<Output = Response> + Send + 'static,
) -> Response {
    enum Phase {
        /// The answer is made; `true` until the first keepalive went out.
        Making(Pin<Box<dyn Future<Output = Response> + Send>>, bool),
        Body(axum::body::BodyDataStream),
    }
    let every = head_bound(&state.config()) / 2;
    let keepalive = || Ok(Bytes::from_static(envelope::KEEPALIVE));
    let start = Phase::Making(Box::pin(answer), true);
    let body = futures::stream::unfold(start, move |phase| async move {
        match phase {
            Phase::Making(f, true) => Some((keepalive(), Phase::Making(f, false))),
            Phase::Making(mut f, false) => tokio::select! {
                biased;
                resp = &mut f => {
                    let (parts, body) = resp.into_parts();
                    let head = envelope::Head {
                        status: parts.status.as_u16(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                            .collect(),
                    };
                    Some((Ok(head.line()), Phase::Body(body.into_data_stream())))
                }
                () = tokio::time::sleep(every) => Some((keepalive(), Phase::Making(f, false))),
            },
            Phase::Body(mut b) => {
                let item = b.next().await?.map_err(std::io::Error::other);
                Some((item, Phase::Body(b)))
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(envelope::CONTENT_TYPE),
    );
    resp
}

/// Whether a forwarded request asked for the envelope.
pub fn wants_envelope(headers: &HeaderMap) -> bool {
    headers
        .get(envelope::ASK)
        .is_some_and(|v| v == envelope::ASK_VALUE)
}
