//! `store::postgres::Redialer` on a real PostgreSQL: it opens nothing until first used, bounds
//! every connection's lock waits and idle transactions, opens a new connection once the
//! server closed the old one or its user forgot it — logging each reopen once, as a warning,
//! never the URL's password — and gives up opening within its bound when the database sits
//! behind a silent network stall.

use std::time::{Duration, Instant};

use super::relay::Relay;
use super::throwaway::{ThrowawayPg, tcp_url};
use crate::wiring::logs::Captured;
use codex_rotor::store::postgres::Redialer;
use tokio_postgres::Client;

/// The `application_name` of the connection under test.
const APP: &str = "rotor_redial";

/// Backends of the connection under test, as the server lists them.
async fn backends(url: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c.query_one(
        "select count(*) from pg_stat_activity where application_name = $1",
        &[&APP],
    )
    .await
    .expect("count")
    .get(0)
}

/// Ends the server side of the connection under test.
async fn terminate(url: &str) {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
        &[&APP],
    )
    .await
    .expect("terminate");
}

async fn pid(r: &mut Redialer<Client>) -> i32 {
    let c = r.ready().await.expect("ready");
    c.query_one("select pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0)
}

/// The warnings logged so far that say a connection was opened again.
fn reopens(log: &Captured) -> usize {
    log.lines()
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("a new one is open"))
        })
        .count()
}

#[tokio::test]
async fn a_redialer_opens_lazily_bounds_its_waits_and_reopens_once_its_connection_is_gone() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let pg = ThrowawayPg::start();
    let url = pg.database("redial").await;
    // Trust auth ignores the password; it is there to prove it never reaches the log.
    let secret_url = format!("{url} application_name={APP} password=hunter2-not-logged");

    let mut r: Redialer<Client> =
        Redialer::new(&secret_url, Duration::from_millis(1_500), "the test");
    assert_eq!(backends(&url).await, 0, "nothing opened before first use");
    let first = pid(&mut r).await;
    assert_eq!(backends(&url).await, 1);
    let c = r.ready().await.expect("ready");
    for setting in ["lock_timeout", "idle_in_transaction_session_timeout"] {
        let shown: String = c
            .query_one(&format!("show {setting}"), &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(shown, "1500ms", "{setting}");
    }
    assert_eq!(pid(&mut r).await, first, "an open connection is kept");
    assert_eq!(reopens(&log), 0, "a first open is no reopen");

    // The server ends it (a restart, a cut): the client notices, the next use opens anew.
    terminate(&url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.current().is_some() {
        assert!(Instant::now() < deadline, "the client never saw its end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = pid(&mut r).await;
    assert_ne!(second, first);
    assert_eq!(reopens(&log), 1, "the reopen is logged once");
    assert_eq!(pid(&mut r).await, second);
    assert_eq!(reopens(&log), 1);

    // Its user gave up on it (no answer in time): the next use opens anew.
    r.forget();
    let third = pid(&mut r).await;
    assert_ne!(third, second);
    assert_eq!(reopens(&log), 2);
    assert_eq!(
        backends(&url).await,
        1,
        "the forgotten connection is closed"
    );

    let all: String = log.lines().iter().map(|l| l.to_string()).collect();
    assert!(!all.contains("hunter2"), "{all}");
}

#[tokio::test]
async fn opening_through_a_silent_network_gives_up_within_the_bound() {
    let pg = ThrowawayPg::start_with_tcp();
    let _ = pg.database("redial_stall").await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let url = tcp_url(relay.addr(), "redial_stall");
    let mut r: Redialer<Client> = Redialer::new(&url, Duration::from_millis(400), "the test");
    r.ready().await.expect("open through the relay");
    r.forget();

    // TCP connects, no byte answers: the open is given up at the bound (the URL's own
    // connect_timeout is 2 s).
    relay.cut();
    let started = Instant::now();
    let Err(e) = r.ready().await else {
        panic!("a connection through a stalled network");
    };
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_200), "{took:?}: {e}");
    assert!(r.current().is_none());

    relay.heal();
    r.ready().await.expect("open once the network is back");
}

#[tokio::test]
async fn a_call_on_a_stalled_connection_ends_at_its_deadline_and_the_next_opens_anew() {
    let pg = ThrowawayPg::start_with_tcp();
    let _ = pg.database("redial_within").await;
    let relay = Relay::start(pg.tcp_addr().expect("tcp"))
        .await
        .expect("relay");
    let url = tcp_url(relay.addr(), "redial_within");
    let mut r: Redialer<Client> = Redialer::new(&url, Duration::from_secs(5), "the test");
    let pid_of = async |c: &mut Client| {
        let row = c.query_one("select pg_backend_pid()", &[]).await?;
        Ok(row.get::<_, i32>(0))
    };
    let first = r
        .within(tokio::time::Instant::now() + Duration::from_secs(5), pid_of)
        .await
        .expect("answered");

    // The open connection stops answering: the call ends at its deadline (not at the
    // open's 5 s bound, nor never) and the connection is dropped.
    relay.cut();
    let started = Instant::now();
    let bound = Duration::from_millis(300);
    let r2 = r.within(tokio::time::Instant::now() + bound, pid_of).await;
    let took = started.elapsed();
    assert!(r2.is_err(), "{r2:?}");
    assert!(
        took >= bound && took < bound + Duration::from_millis(700),
        "{took:?}"
    );
    assert!(r.current().is_none(), "the stalled connection was dropped");

    relay.heal();
    let second = r
        .within(tokio::time::Instant::now() + Duration::from_secs(5), pid_of)
        .await
        .expect("answered once the network is back");
    assert_ne!(second, first, "a new connection");
}
