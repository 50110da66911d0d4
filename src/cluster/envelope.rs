//! The envelope a peer sends a forwarded `stream: false` answer in (docs/cluster.md "Requests
//! across nodes"). Pure: bytes in, bytes out.
//!
//! A node collects a non-streaming answer whole before it knows its status, so the head of
//! that answer can come minutes after the request — and a forwarding node could not tell a
//! peer that is still collecting from one that is paused. So the forwarding node asks for the
//! envelope ([`ASK`]), and the peer answers `200` [`CONTENT_TYPE`] at once, sends
//! [`KEEPALIVE`] while it works, then the real answer's head as one line of JSON and the real
//! answer's body bytes unchanged. The forwarder bounds every silence of the peer before that
//! head (as it bounds a stream's head), not the whole collection, and hands the client exactly
//! the peer's answer: its status, its headers, its bytes.

use bytes::Bytes;

/// The request header a forwarding node asks for the envelope with, and its value.
pub const ASK: &str = "x-codex-rotor-envelope";
/// The one envelope version.
pub const ASK_VALUE: &str = "v1";
/// The content type of an enveloped answer.
pub const CONTENT_TYPE: &str = "application/x-codex-rotor-envelope";
/// What the peer sends while it works: one newline (the head line never starts with one).
pub const KEEPALIVE: &[u8] = b"\n";
/// Longest head line accepted (a node's answer head fits in 16 KiB; see `proxy::copy_response_headers`).
pub const MAX_HEAD: usize = 64 * 1024;

/// The head of the enveloped answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its status.
    pub status: u16,
    /// Its headers in order, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The head as the envelope carries it: JSON on one line (values as Latin-1 text, so any
    /// header byte survives), then a newline.
    pub fn line(&self) -> Bytes {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.iter().map(|&b| char::from(b)).collect()))
            .collect();
        let mut line = serde_json::to_vec(&serde_json::json!({
            "status": self.status,
            "headers": headers,
        }))
        .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn parse(line: &[u8]) -> Option<Head> {
        #[derive(serde::Deserialize)]
        struct Wire {
            status: u16,
            headers: Vec<(String, String)>,
        }
        let w: Wire = serde_json::from_slice(line).ok()?;
        let headers = w
            .headers
            .into_iter()
            .map(|(n, v)| {
                let bytes = v.chars().map(|c| u8::try_from(u32::from(c)).ok());
                Some((n, bytes.collect::<Option<Vec<u8>>>()?))
            })
            .collect::<Option<_>>()?;
        Some(Head {
            status: w.status,
            headers,
        })
    }
}

/// What the start of an envelope said so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Keepalives, or part of the head: read on.
    More,
    /// The head, and the body bytes that came with it.
    Head(Head, Bytes),
    /// Not an envelope this node can read.
    Bad(&'static str),
}

/// Reads the start of an envelope, chunk by chunk.
#[derive(Debug, Default)]
pub struct Opening {
    buf: Vec<u8>,
}

impl Opening {
    /// Takes the next chunk of the envelope.
    pub fn feed(&mut self, chunk: &[u8]) -> Read {
        let chunk = if self.buf.is_empty() {
            let start = chunk
                .iter()
                .position(|&b| b != KEEPALIVE[0])
                .unwrap_or(chunk.len());
            &chunk[start..]
        } else {
            chunk
        };
        self.buf.extend_from_slice(chunk);
        let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
            return if self.buf.len() > MAX_HEAD {
                Read::Bad("head too long")
            } else {
                Read::More
            };
        };
        match Head::parse(&self.buf[..end]) {
            Some(head) => Read::Head(head, Bytes::copy_from_slice(&self.buf[end + 1..])),
            None => Read::Bad("head is not the envelope's JSON"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            status: 429,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x-odd".into(), vec![0x80, 0xff, b'a', b'"', b'\\']),
            ],
        }
    }

    #[test]
    fn keepalives_then_a_head_split_anywhere_give_the_head_and_the_body_bytes() {
        let mut wire = b"\n\n\n".to_vec();
        wire.extend_from_slice(&head().line());
        wire.extend_from_slice(b"{\"error\":\n{}}");
        for cut in 0..wire.len() {
            let mut o = Opening::default();
            let mut got = None;
            for part in [&wire[..cut], &wire[cut..]] {
                match o.feed(part) {
                    Read::More => {}
                    Read::Head(h, rest) => {
                        got = Some((h, rest));
                        break;
                    }
                    Read::Bad(why) => panic!("{why} at {cut}"),
                }
            }
            let (h, rest) = got.unwrap_or_else(|| panic!("no head at cut {cut}"));
            assert_eq!(h, head());
            // The bytes after the head in the second part are the body's (the first part's are
            // in `rest` when the cut fell after the head).
            let head_end = 3 + head().line().len();
            let expected = if cut >= head_end {
                &wire[head_end..cut]
            } else {
                &wire[head_end..]
            };
            assert_eq!(&rest[..], expected, "cut {cut}");
        }
    }

    #[test]
    fn a_head_that_never_ends_or_does_not_parse_is_refused() {
        let mut o = Opening::default();
        assert_eq!(
            o.feed(&vec![b'x'; MAX_HEAD + 1]),
            Read::Bad("head too long")
        );
        let mut o = Opening::default();
        assert!(matches!(o.feed(b"HTTP/1.1 200\n"), Read::Bad(_)));
        let mut o = Opening::default();
        let wide = b"{\"status\":200,\"headers\":[[\"a\",\"\\u0100\"]]}\n";
        assert!(matches!(o.feed(wide), Read::Bad(_)), "not Latin-1");
    }
}
