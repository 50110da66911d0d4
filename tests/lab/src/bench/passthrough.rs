//! The floor under `bench proxy`: a bare pass-through built from the same libraries as the
//! daemon (hyper's server, reqwest's client, mimalloc) that forwards every request to one
//! account upstream and streams the answer back, and does nothing else: no keys, no pool, no
//! failover, no observation, no records. `bench proxy` measures it in the same run as the
//! daemon, so the table can say how much of the proxy's cost is the extra HTTP hop itself and
//! how much is codex-rotor's work on top of it.
//!
//! It runs as a child process (`rotor-lab bench passthrough`, hidden) so its CPU time and
//! memory are its own, like the daemon's.

use anyhow::Context;
use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of the hidden `bench passthrough`.
#[derive(Debug, Clone, clap::Args)]
pub struct Passthrough {
    /// Address to listen on.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// The upstream URL every request is posted to.
    #[arg(long)]
    pub upstream: String,
    /// File with the account's access token on the first line and its account id on the second.
    #[arg(long)]
    pub credentials: PathBuf,
}

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

struct Target {
    client: reqwest::Client,
    url: String,
    bearer: String,
    account: String,
}

/// Serves until killed.
pub async fn serve(p: Passthrough) -> anyhow::Result<()> {
    let creds = std::fs::read_to_string(&p.credentials).context("reading the credentials")?;
    let mut lines = creds.lines();
    let (Some(token), Some(account)) = (lines.next(), lines.next()) else {
        anyhow::bail!("the credentials file needs a token line and an account line");
    };
    let target = Arc::new(Target {
        client: reqwest::Client::builder().no_proxy().build()?,
        url: p.upstream,
        bearer: format!("Bearer {token}"),
        account: account.to_owned(),
    });
    let listener = tokio::net::TcpListener::bind(p.listen).await?;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (target, builder) = (target.clone(), builder.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| forward(target.clone(), req));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request: read the body, post it upstream, stream the answer back.
async fn forward(
    t: Arc<Target>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    if req.uri().path() == "/healthz" {
        return Ok(reply(200, "ok"));
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(400, "cannot read the body"));
    };
    let sent = t
        .client
        .post(&t.url)
        .header("authorization", &t.bearer)
        .header("chatgpt-account-id", &t.account)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => return Ok(reply(502, &e.to_string())),
    };
    let status = upstream.status();
    let stream = upstream
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
    let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(resp)
}

fn reply(status: u16, text: &str) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(
        Full::new(Bytes::copy_from_slice(text.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    resp
}
