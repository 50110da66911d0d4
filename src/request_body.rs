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
//!
//! A `Content-Encoding: zstd` body (the Codex CLI's built-in provider compresses its requests
//! with ChatGPT auth) is decoded by [`decode`], never to more than the same limit, so a small
//! body that inflates without end is refused as too large rather than held. The decoded JSON is
//! what goes upstream: the daemon reads and may rewrite the body, and the backend takes an
//! uncompressed one (docs/protocol.md §11).

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

/// Why a body's `Content-Encoding` could not be undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decoded, the body would be larger than `limit` bytes.
    #[error("the decompressed request body is larger than the limit of {}", limit_text(*limit))]
    TooLarge {
        /// The limit in bytes, for the message.
        limit: usize,
    },
    /// Not a valid stream of its encoding.
    #[error("the request body is not valid {encoding}: {reason}")]
    Malformed {
        /// The encoding named by `Content-Encoding`.
        encoding: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// An encoding the daemon does not decode.
    #[error("Content-Encoding `{0}` is not supported; send the body uncompressed or as zstd")]
    Unsupported(String),
}

/// `body` with its `Content-Encoding` undone: the same bytes without one (or `identity`), the
/// decoded bytes — at most `limit` of them — for `zstd`.
pub async fn decode(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let Some(enc) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let enc = enc.to_str().unwrap_or("").trim();
    if enc.is_empty() || enc.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    if !enc.eq_ignore_ascii_case("zstd") {
        return Err(DecodeError::Unsupported(enc.chars().take(40).collect()));
    }
    // Decoding costs CPU in proportion to the output: off the async workers.
    tokio::task::spawn_blocking(move || unzstd(&body, limit))
        .await
        .unwrap_or_else(|e| {
            Err(DecodeError::Malformed {
                encoding: "zstd",
                reason: e.to_string(),
            })
        })
}

/// Decodes a zstd body (one frame or several), stopping as soon as the output passes `limit`.
fn unzstd(body: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    use std::io::Read as _;
    let malformed = |e: &dyn std::fmt::Display| DecodeError::Malformed {
        encoding: "zstd",
        reason: e.to_string(),
    };
    let mut input = body;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    while !input.is_empty() {
        let decoder =
            ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(|e| malformed(&e))?;
        let room = (limit - out.len()) as u64 + 1;
        decoder
            .take(room)
            .read_to_end(&mut out)
            .map_err(|e| malformed(&e))?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
    }
    Ok(Bytes::from(out))
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

    fn zstd_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            "zstd".parse().expect("value"),
        );
        h
    }

    #[tokio::test]
    async fn zstd_bodies_are_decoded_within_the_limit() {
        let json = br#"{"model":"gpt-5.5","input":[]}"#;
        let packed = ruzstd::encoding::compress_to_vec(
            &json[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let got = decode(&zstd_headers(), Bytes::from(packed.clone()), 1024).await;
        assert_eq!(got, Ok(Bytes::from_static(json)));
        let two = [packed.clone(), packed].concat();
        let got = decode(&zstd_headers(), Bytes::from(two), 1024)
            .await
            .expect("two frames");
        assert_eq!(got.len(), 2 * json.len());
        let plain = decode(&HeaderMap::new(), Bytes::from_static(json), 1024).await;
        assert_eq!(plain, Ok(Bytes::from_static(json)));
    }

    #[tokio::test]
    async fn a_zstd_bomb_is_too_large_and_garbage_is_malformed() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = ruzstd::encoding::compress_to_vec(
            &zeros[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let got = decode(&zstd_headers(), Bytes::from(bomb), 64 * 1024).await;
        assert_eq!(got, Err(DecodeError::TooLarge { limit: 64 * 1024 }));
        let got = decode(
            &zstd_headers(),
            Bytes::from_static(b"{\"not\":\"zstd\"}"),
            1024,
        )
        .await;
        assert!(matches!(got, Err(DecodeError::Malformed { .. })), "{got:?}");
        let mut gzip = HeaderMap::new();
        gzip.insert(
            http::header::CONTENT_ENCODING,
            "gzip".parse().expect("value"),
        );
        let got = decode(&gzip, Bytes::from_static(b"x"), 1024).await;
        assert_eq!(got, Err(DecodeError::Unsupported("gzip".into())));
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
