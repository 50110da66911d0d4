//! Continuing a client stream that is already open with a peer's (docs/cluster.md "Requests
//! across nodes"): a streaming request whose local failover failed after heartbeats went out
//! spills, and the peer's events follow the heartbeats.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::OpenBody;

/// The client body `own` until a body arrives on `handed`, then that one (`own` dropped). The
/// first event of the handed body is dropped when it is `repeated`: the event `own`'s
/// keepalives already opened the client's stream with (an Anthropic `message_start`).
pub fn spliced(
    own: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    handed: tokio::sync::oneshot::Receiver<OpenBody>,
    repeated: Option<&'static str>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    enum Phase {
        Own(OpenBody, Option<tokio::sync::oneshot::Receiver<OpenBody>>),
        /// The handed body, with its start kept back until its first event is whole.
        Handed(OpenBody, Option<Vec<u8>>),
    }
    let first_line = repeated.map(|e| {
        format!(
            "event: {e}
"
        )
    });
    let start = Phase::Own(own.boxed(), Some(handed));
    futures::stream::unfold(start, move |phase| {
        let first_line = first_line.clone();
        async move {
            let mut phase = phase;
            loop {
                phase = match phase {
                    Phase::Own(mut own, Some(mut rx)) => tokio::select! {
                        biased;
                        got = &mut rx => match got {
                            Ok(body) => Phase::Handed(body, first_line.as_ref().map(|_| Vec::new())),
                            Err(_) => Phase::Own(own, None),
                        },
                        item = own.next() => return Some((item?, Phase::Own(own, Some(rx)))),
                    },
                    Phase::Own(mut own, None) => {
                        return Some((own.next().await?, Phase::Own(own, None)));
                    }
                    Phase::Handed(mut body, None) => {
                        return Some((body.next().await?, Phase::Handed(body, None)));
                    }
                    Phase::Handed(mut body, Some(mut start)) => {
                        let Some(item) = body.next().await else {
                            return (!start.is_empty())
                                .then(|| (Ok(Bytes::from(start)), Phase::Handed(body, None)));
                        };
                        let chunk = match item {
                            Ok(c) => c,
                            Err(e) => return Some((Err(e), Phase::Handed(body, None))),
                        };
                        start.extend_from_slice(&chunk);
                        let Some(end) = start.windows(2).position(|w| w == b"\n\n") else {
                            phase = Phase::Handed(body, Some(start));
                            continue;
                        };
                        let line = first_line.as_deref().unwrap_or_default();
                        let rest = if start.starts_with(line.as_bytes()) {
                            start.split_off(end + 2)
                        } else {
                            start
                        };
                        return Some((Ok(Bytes::from(rest)), Phase::Handed(body, None)));
                    }
                };
            }
        }
    })
}
