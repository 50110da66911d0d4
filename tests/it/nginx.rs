//! Debian's real nginx (`/usr/sbin/nginx`, installed by `tests/run`) in front of the daemon,
//! configured from the shipped `config/examples/nginx.conf` (only the addresses, and for the
//! sub-path case the location, are rewritten): a streamed `/v1/responses` answer arrives
//! through it event by event, not buffered to the end, and `server.path_prefix` works behind
//! nginx. nginx runs as a non-daemon child with its own prefix directory and is killed when the
//! test ends. A missing nginx fails the test (it is a required part of the suite).

use crate::support::{POOL_KEY, TestEnv, responses_body, start_env_with};
use codex_rotor::sim::SimOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `tests/run` installs Debian's nginx.
const NGINX: &str = "/usr/sbin/nginx";
/// The shipped example this test runs.
const EXAMPLE: &str = include_str!("../../config/examples/nginx.conf");

/// A running nginx child, killed on drop.
struct Nginx {
    /// The child process (`daemon off; master_process off`).
    child: Child,
    /// Where clients connect.
    addr: SocketAddr,
    /// Prefix directory: config, logs, temp files, pid.
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, read and released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    l.local_addr().expect("addr").port()
}

/// The example's site config, pointed at `daemon` and listening on `port`, optionally served
/// under `location`.
fn site_config(daemon: SocketAddr, port: u16, location: &str) -> String {
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example still contains {from:?}");
        text.replace(from, to)
    };
    let site = replace(
        EXAMPLE.to_owned(),
        "server 127.0.0.1:8080;",
        &format!("server {daemon};"),
    );
    let site = replace(site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    replace(site, "location / {", &format!("location {location} {{"))
}

/// Starts nginx in front of `daemon`, with the example's `location /` moved to `location`.
fn start_nginx(daemon: SocketAddr, location: &str) -> Nginx {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: run `tests/run` (it installs Debian's nginx) or apt-get install nginx"
    );
    let dir = tempfile::tempdir().expect("prefix dir");
    let p = dir.path();
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(p.join(sub)).expect("prefix subdir");
    }
    let port = free_port();
    let tmp = p.join("tmp");
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {pid};\nerror_log {err} info;\n\
         events {{ worker_connections 64; }}\nhttp {{\n  access_log {acc};\n\
         client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
         fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
         {site}\n}}\n",
        pid = p.join("nginx.pid").display(),
        err = p.join("logs/error.log").display(),
        acc = p.join("logs/access.log").display(),
        t = tmp.display(),
        site = site_config(daemon, port, location),
    );
    let conf_path = p.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("config written");
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(p)
        .arg("-e")
        .arg(p.join("logs/error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let nginx = Nginx { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        let log = std::fs::read_to_string(nginx.dir.path().join("logs/error.log"));
        assert!(
            Instant::now() < deadline,
            "nginx did not start listening: {}",
            log.unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}

/// A daemon whose simulated answers stream one event every 100 ms.
async fn slow_daemon(prefix: &str) -> TestEnv {
    let opts = SimOptions {
        event_delay: Duration::from_millis(100),
        answer_words: 12,
        ..SimOptions::default()
    };
    let prefix = prefix.to_owned();
    start_env_with(opts, 1, move |cfg, _| {
        cfg.server.trust_forwarded_headers = true;
        cfg.server.path_prefix = prefix;
    })
    .await
}

/// Streams a Responses request to `url`; returns (time to the first event, total time, body).
async fn stream_through(url: &str) -> (Duration, Duration, String) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let started = Instant::now();
    let mut resp = http
        .post(url)
        .bearer_auth(POOL_KEY)
        .json(&responses_body(true))
        .send()
        .await
        .expect("nginx answers");
    assert_eq!(resp.status(), 200, "through nginx");
    let mut body = String::new();
    let mut first = None;
    while let Some(chunk) = resp.chunk().await.expect("stream readable") {
        body.push_str(&String::from_utf8_lossy(&chunk));
        if first.is_none() && body.contains("data: ") {
            first = Some(started.elapsed());
        }
    }
    (first.expect("an event arrived"), started.elapsed(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_passes_through_nginx_event_by_event() {
    let env = slow_daemon("").await;
    let nginx = start_nginx(env.addr, "/");
    let (first, total, body) = stream_through(&format!("http://{}/v1/responses", nginx.addr)).await;
    let events = crate::support::event_types(&body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed"),
        "{body}"
    );
    assert!(events.len() >= 10, "{events:?}");
    assert!(
        total >= Duration::from_millis(1000),
        "the simulator paces the events: {total:?}"
    );
    assert!(
        first * 4 < total,
        "the first event arrives well before the end (first {first:?}, total {total:?}): nginx must not buffer"
    );
    drop(nginx);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_prefix_works_behind_nginx() {
    let env = slow_daemon("/codex").await;
    let nginx = start_nginx(env.addr, "/codex/");
    let (first, total, body) =
        stream_through(&format!("http://{}/codex/v1/responses", nginx.addr)).await;
    assert!(body.contains("response.completed"), "{body}");
    assert!(first * 4 < total, "first {first:?}, total {total:?}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let health = http
        .get(format!("http://{}/codex/healthz", nginx.addr))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let outside = http
        .get(format!("http://{}/v1/models", nginx.addr))
        .bearer_auth(POOL_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        outside.status(),
        404,
        "only the sub-path reaches the daemon"
    );
    drop(nginx);
    env.shutdown().await;
}
