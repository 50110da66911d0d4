//! The load generator against the simulator: counts, statuses and completeness it reports
//! must match what the simulator served.

use super::{access_token, body, start};
use codex_rotor::sim::{AccountSpec, FaultKind, FaultSpec, SimOptions};
use rotor_lab::loadgen::{self, LoadSpec, Stop};

#[tokio::test]
async fn loadgen_reports_what_the_simulator_served() {
    let sim = start(SimOptions::default()).await;
    let acct = sim.create_account(AccountSpec::default());
    let spec = LoadSpec {
        url: format!("{}/codex/responses", sim.backend_url()),
        headers: vec![
            (
                "authorization".into(),
                format!("Bearer {}", access_token(&acct.auth_json)),
            ),
            ("content-type".into(), "application/json".into()),
        ],
        body: body("hi", true).to_string().into(),
        concurrency: 4,
        stop: Stop::Requests(200),
        expect_body_contains: Some("\"response.completed\"".into()),
        ..LoadSpec::default()
    };
    let report = loadgen::run(spec.clone()).await.expect("runs");
    assert_eq!(
        (report.requests, report.ok, report.errors, report.incomplete),
        (200, 200, 0, 0)
    );
    assert_eq!(report.statuses.get(&200), Some(&200));
    assert!(report.rps > 0.0 && report.latency.p50 <= report.latency.p99);
    assert!(report.ttfb.p50 <= report.latency.p50);
    assert_eq!(sim.counters(&acct.id).completed, 200);

    sim.inject(
        FaultSpec::always(FaultKind::PrematureClose {
            after_events: 2,
            mid_chunk: false,
        })
        .times(5),
    );
    sim.inject(FaultSpec::always(FaultKind::ServerError).times(3));
    let report = loadgen::run(LoadSpec {
        stop: Stop::Requests(50),
        ..spec
    })
    .await
    .expect("runs");
    assert_eq!(
        report.incomplete, 5,
        "streams without response.completed are flagged"
    );
    assert_eq!(report.statuses.get(&500), Some(&3));
    assert_eq!(report.ok, 47);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sim_measures_complete_streams_and_the_simulator_cpu() {
    let b = rotor_lab::bench::SimBench {
        concurrency: 4,
        duration: std::time::Duration::from_millis(500),
        words: 8,
        json: true,
    };
    let report = rotor_lab::bench::sim(&b).await.expect("bench runs");
    let load = &report.load;
    assert!(load.requests > 0);
    assert_eq!(
        (load.ok, load.errors, load.incomplete),
        (load.requests, 0, 0)
    );
    assert!(
        report.sim_cpu > std::time::Duration::ZERO,
        "the simulator thread's CPU is read"
    );
    assert!(report.per_core_rps > 0.0);
}
