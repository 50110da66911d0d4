//! The fault tools of `chaos cluster` on a real PostgreSQL: the throwaway server on TCP, a
//! relay in front of it that partitions (a query through a cut relay does not complete, and
//! does once it heals, on the same connection) and stopping and starting the server.

use rotor_lab::pg::{ThrowawayPg, tcp_url};
use rotor_lab::relay::Relay;
use std::time::Duration;

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

async fn one(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("select 1", &[])
        .await
        .expect("query")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_relay_partitions_one_client_from_postgres_until_it_heals() {
    let pg = ThrowawayPg::start_with_tcp();
    let name = "relay";
    pg.database(name).await;
    let tcp = pg.tcp_addr().expect("listens on TCP");
    let relay = Relay::start(tcp).await.expect("relay");
    let through = connect(&tcp_url(relay.addr(), name)).await;
    let direct = connect(&tcp_url(tcp, name)).await;
    assert_eq!(one(&through).await, 1);

    relay.cut();
    let held = tokio::time::timeout(Duration::from_millis(1500), one(&through)).await;
    assert!(
        held.is_err(),
        "a query through the cut relay does not complete"
    );
    assert_eq!(
        one(&direct).await,
        1,
        "the cut is one client's, not the server's"
    );
    let new = tokio::time::timeout(
        Duration::from_millis(1500),
        tokio_postgres::connect(&tcp_url(relay.addr(), name), tokio_postgres::NoTls),
    )
    .await;
    assert!(new.is_err(), "no new connection gets through a cut");

    relay.heal();
    let after = tokio::time::timeout(Duration::from_secs(5), one(&through)).await;
    assert_eq!(after.expect("completes once healed"), 1);
    assert!(relay.accepted() >= 2);

    pg.stop();
    assert!(
        direct.query_one("select 1", &[]).await.is_err(),
        "a stopped server answers nothing"
    );
    pg.restart();
    let again = connect(&tcp_url(tcp, name)).await;
    assert_eq!(
        one(&again).await,
        1,
        "started again on the same port and data"
    );
}
