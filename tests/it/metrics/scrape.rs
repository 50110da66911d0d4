//! `/metrics` of a real daemon after real traffic, and refresh outcomes counted through the
//! wrapped token refresher against the simulator's token endpoint.

use super::{FAMILIES, prom};
use codex_rotor::Metrics;
use rotor_actors::PoolSummary;

#[tokio::test]
async fn a_real_scrape_parses_strictly_and_counts_the_traffic() {
    use crate::admin::rig::Rig;
    let rig = Rig::start().await;
    let (a, a_id) = rig.add_account(Default::default()).await;
    let (b, b_id) = rig.add_account(Default::default()).await;
    rig.sim.set_usage(&a.id, 41.0, 7.0);
    rig.probe_until(&a_id, |v| {
        !v["buckets"].as_array().is_none_or(Vec::is_empty)
    })
    .await;
    rig.sim.set_usage(&b.id, 100.0, 30.0);
    rig.probe_until(&b_id, |v| v["derived_status"] == "rate_limited")
        .await;
    for _ in 0..3 {
        assert_eq!(rig.respond("gpt-5.4").await.0, 200);
    }
    let r = rig
        .http
        .get(rig.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.expect("body");
    let fams = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, kind) in FAMILIES {
        assert_eq!(
            fams.get(*name).map(|f| f.kind.as_str()),
            Some(*kind),
            "{name}"
        );
    }
    let req = &fams["codex_rotor_requests_total"];
    let served = req.with(
        "codex_rotor_requests_total",
        &[("route", "responses"), ("status", "200")],
    );
    assert_eq!(served.first().map(|s| s.value), Some(3.0), "{text}");
    let t = &fams["codex_rotor_time_to_first_byte_seconds"];
    let n = t.with(
        "codex_rotor_time_to_first_byte_seconds_count",
        &[("route", "responses")],
    );
    assert_eq!(n.first().map(|s| s.value), Some(3.0));
    let out =
        fams["codex_rotor_tokens_total"].with("codex_rotor_tokens_total", &[("kind", "output")]);
    assert!(out.first().is_some_and(|s| s.value > 0.0), "{text}");
    let acc = &fams["codex_rotor_accounts"];
    let count = |s: &str| {
        acc.with("codex_rotor_accounts", &[("derived_status", s)])
            .first()
            .map(|s| s.value)
    };
    assert_eq!(
        (count("active"), count("rate_limited")),
        (Some(1.0), Some(1.0))
    );
    let q = &fams["codex_rotor_account_quota_used_percent"];
    let used = q.with(
        "codex_rotor_account_quota_used_percent",
        &[("account", &a_id), ("bucket", "primary")],
    );
    assert!(
        used.first().is_some_and(|s| (s.value - 41.0).abs() < 1.0),
        "{text}"
    );
    let lr = &fams["codex_rotor_account_quota_limit_reached"];
    let locked = lr.with(
        "codex_rotor_account_quota_limit_reached",
        &[("account", &b_id), ("bucket", "primary")],
    );
    assert_eq!(locked.first().map(|s| s.value), Some(1.0));
    assert_eq!(fams["codex_rotor_pool_serving"].samples[0].value, 1.0);
    // A single node runs no shared affinity table (docs/cluster.md): none of its families.
    assert!(
        !fams
            .keys()
            .any(|f| f.starts_with("codex_rotor_cluster_affinity")),
        "{text}"
    );
    rig.shutdown().await;
}

#[tokio::test]
async fn refreshes_are_counted_by_outcome_through_the_wrapped_refresher() {
    use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
    use rotor_actors::RefreshReason;
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let m = Metrics::new();
    let real = codex_rotor::HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    let counted = m.count_refreshes(std::sync::Arc::new(real));
    let acct = sim.create_account(AccountSpec::default());
    let rt = acct.auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let first = counted
        .refresh(rt.clone(), RefreshReason::ProactiveExpiry)
        .await;
    assert!(first.is_ok(), "{first:?}");
    // Refresh tokens are single-use: the second exchange is refused for good.
    let again = counted.refresh(rt, RefreshReason::ProactiveExpiry).await;
    assert!(
        matches!(again, Err(rotor_actors::RefreshError::Permanent { .. })),
        "{again:?}"
    );
    let text = m.render(&PoolSummary::default(), &[]);
    let fams = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let r = &fams["codex_rotor_token_refreshes_total"];
    for outcome in ["ok", "permanent"] {
        let s = r.with("codex_rotor_token_refreshes_total", &[("outcome", outcome)]);
        assert_eq!(s.first().map(|s| s.value), Some(1.0), "{outcome}: {text}");
    }
    sim.shutdown().await;
}
