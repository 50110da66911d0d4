//! Request bodies at the edge: read only after the request is known to be allowed, never past a
//! limit, and — when a request is refused before its body was read — drained in the background
//! without keeping a byte.
//!
//! Why: an extractor that reads the body runs before the handler, so a client without a key
//! could make the daemon buffer up to `server.max_body_bytes` (40 such clients held 1.3 GiB).
//! Handlers therefore take the raw [`Body`], authenticate from the request head, and only then
//! call [`read`]. A refused request's body goes to [`discard`]: simply dropping it makes hyper
//! close a connection that still has unread bytes, the kernel then answers the client with a
//! reset, and a client still writing its body (Claude Code sends tens of KiB) sees "connection
//! reset" instead of the 401 — and retries it as a network error. Draining costs one small task
//! and hyper's capped read buffer per connection, for a bounded number of bytes and seconds.

use axum::body::{Body, HttpBody as _};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use std::time::Duration;

/// Longest a refused request's body is drained before its connection is closed anyway.
const DRAIN_FOR: Duration = Duration::from_secs(10);

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is (or announces being) larger than `limit` bytes.
    #[error("request body is larger than the limit of {}", limit_text(*limit))]
    TooLarge {
        /// The limit in bytes, for the message.
        limit: usize,
    },
    /// The connection broke or the framing was invalid while reading.
    #[error("cannot read the request body: {0}")]
    Broken(String),
}

/// `limit` for people: `4096 bytes`, or `32 MiB (33554432 bytes)` for whole mebibytes.
pub fn limit_text(limit: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if limit >= MIB && limit % MIB == 0 {
        format!("{} MiB ({limit} bytes)", limit / MIB)
    } else {
        format!("{limit} bytes")
    }
}

/// The body length the client announced (`Content-Length`), if any.
fn announced(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the whole body, at most `limit` bytes. An announced length over the limit is refused
/// before a byte is read; a body without one is cut off as soon as it outgrows the limit. A
/// refused body is [`discard`]ed, so the client gets to read the answer.
pub async fn read(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge { limit };
    let announced = announced(headers);
    if announced.is_some_and(|n| n > limit as u64) {
        discard(headers, body, limit);
        return Err(too_large);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing the daemon reads
        };
        total += data.len();
        if total > limit {
            discard(headers, body, limit);
            return Err(too_large);
        }
        // One chunk is kept as is; more are joined once, sized by the announced length.
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(earlier)) => {
                let hint = announced.map_or(0, |n| n as usize).max(total);
                let mut buf = BytesMut::with_capacity(hint);
                buf.extend_from_slice(&earlier);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
}

/// Lets the unread body of a refused request drain in the background — at most `limit` bytes
/// for at most [`DRAIN_FOR`], each chunk dropped as it arrives — so its connection ends with
/// the answer read, not with a reset. Nothing is spawned when there is nothing to read, or when
/// the client waits for `100 Continue` before sending (it will not send: dropping is enough).
pub fn discard(headers: &HeaderMap, body: Body, limit: usize) {
    let waits_for_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if body.is_end_stream() || waits_for_continue {
        return;
    }
    let mut body = body;
    tokio::spawn(async move {
        let mut seen = 0usize;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > limit {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_FOR, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, n.into());
        h
    }

    #[tokio::test]
    async fn reads_within_the_limit_and_refuses_beyond_it() {
        let body = Body::from("hello");
        assert_eq!(
            read(&with_length(5), body, 5).await,
            Ok(Bytes::from("hello"))
        );
        let body = Body::from("hello!");
        assert_eq!(
            read(&HeaderMap::new(), body, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        );
        let announced = read(&with_length(1 << 30), Body::empty(), 5).await;
        assert_eq!(announced, Err(BodyError::TooLarge { limit: 5 }));
    }

    #[tokio::test]
    async fn chunks_are_joined_in_order() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = ["ab", "cd", "ef"]
            .into_iter()
            .map(|c| Ok(Bytes::from(c)))
            .collect();
        let body = Body::from_stream(futures::stream::iter(chunks));
        assert_eq!(
            read(&with_length(6), body, 6).await,
            Ok(Bytes::from("abcdef"))
        );
    }

    #[test]
    fn limits_are_stated_in_bytes_and_mebibytes() {
        assert_eq!(limit_text(4096), "4096 bytes");
        assert_eq!(limit_text(32 * 1024 * 1024), "32 MiB (33554432 bytes)");
        let e = BodyError::TooLarge { limit: 1024 };
        assert_eq!(
            e.to_string(),
            "request body is larger than the limit of 1024 bytes"
        );
    }
}
