//! The dashboard in a real headless Chromium, driven over the DevTools protocol
//! (`dashboard/cdp.rs`): log in with the admin key, read badges and quota bars from the DOM for
//! accounts seeded in every derived status through the simulator, follow live updates, use a
//! filter and a row action, and save a screenshot whose path the test prints. A second test
//! loads 1 000 accounts and checks the table stays virtualised and fast. `dashboard/scale.rs`
//! checks what an operator of 200 accounts needs (sorting, the serving-now view, dates, …).

pub mod cdp;
mod nodes;
mod scale;
mod scene;

use crate::admin::rig::{ADMIN_KEY, Rig, seed_every_status};
use cdp::Browser;
use serde_json::{Value, json};
use std::time::Duration;

/// Reads every rendered account row: id, status attribute, badge and bars.
const READ_ROWS: &str = r#"Array.from(document.querySelectorAll('#accounts .row')).map(r => ({
  id: r.dataset.id, status: r.dataset.status,
  badge: r.querySelector('[data-badge]').dataset.badge,
  badgeClass: r.querySelector('[data-badge]').className,
  badgeText: r.querySelector('[data-badge]').textContent,
  bars: Array.from(r.querySelectorAll('.bar[data-bucket]')).map(b => ({
    bucket: b.dataset.bucket, pct: Number(b.dataset.pct), limit: b.dataset.limit === '1',
    cls: b.className, fill: b.querySelector('.bar-fill').style.width,
    text: b.querySelector('.bar-top b').textContent,
    reset: (b.querySelector('.bar-reset') || {}).textContent || '' })) }))"#;

/// Where screenshots go: `target/screenshots/NAME.png`.
pub fn screenshot_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{name}.png"))
}

/// Opens the dashboard and logs in through the form.
async fn login(b: &mut Browser, rig: &Rig) {
    login_at(b, &rig.url("/"), ADMIN_KEY).await;
}

/// Opens the dashboard at `page` and logs in with `admin_key` through the form.
pub async fn login_at(b: &mut Browser, page: &str, admin_key: &str) {
    b.goto(page).await.expect("dashboard loads");
    b.wait_for(
        "!document.getElementById('login').hidden",
        Duration::from_secs(10),
    )
    .await
    .expect("login form shown without a session");
    if let Err(e) = b.screenshot(&screenshot_path("login")).await {
        println!("login screenshot failed: {e}");
    }
    let submit = format!(
        "document.getElementById('login-key').value = {}; document.getElementById('login-form').requestSubmit(); true",
        json!(admin_key)
    );
    b.eval(&submit).await.expect("submit");
    b.wait_for(
        "!document.getElementById('app').hidden",
        Duration::from_secs(10),
    )
    .await
    .expect("logged in");
}

/// One row by account id from a `READ_ROWS` result.
fn row<'a>(rows: &'a Value, id: &str) -> &'a Value {
    rows.as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("no row for {id} in {rows:#}"))
}

/// A bar of a row by bucket name.
fn bar<'a>(row: &'a Value, bucket: &str) -> &'a Value {
    row["bars"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["bucket"] == bucket))
        .unwrap_or_else(|| panic!("no {bucket} bar in {row:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_derived_status_with_bars_and_live_updates() {
    let rig = Rig::start().await;
    let mut b = Browser::launch(1680, 1250).await.expect("chromium starts");
    let seeded = seed_every_status(&rig).await;
    login(&mut b, &rig).await;
    b.wait_for(
        &format!(
            "document.querySelectorAll('#accounts .row').length === {}",
            seeded.len()
        ),
        Duration::from_secs(10),
    )
    .await
    .expect("every account rendered");
    let rows = b.eval(READ_ROWS).await.expect("rows");
    let shot = screenshot_path("dashboard");
    b.screenshot(&shot).await.expect("screenshot");
    println!("dashboard screenshot: {}", shot.display());

    for s in &seeded {
        let r = row(&rows, &s.id);
        assert_eq!(r["badge"], s.status, "{r:#}");
        assert_eq!(r["status"], s.status);
        assert!(
            r["badgeClass"].as_str().unwrap_or("").contains(s.status),
            "{r:#}"
        );
    }
    // Bars: level colours, text, fill width and a live countdown.
    let calm = row(&rows, &seeded[0].id);
    let p = bar(calm, "primary");
    assert_eq!(
        (p["pct"].as_i64(), p["limit"].as_bool()),
        (Some(35), Some(false)),
        "{p}"
    );
    assert!(
        p["cls"].as_str().unwrap_or("").contains("ok") && p["fill"] == "35%",
        "{p}"
    );
    assert!(
        p["reset"].as_str().unwrap_or("").starts_with("resets in"),
        "{p}"
    );
    assert_eq!(bar(calm, "secondary")["pct"], 12);
    let extra = calm["bars"].as_array().and_then(|b| {
        b.iter().find(|b| {
            b["bucket"]
                .as_str()
                .is_some_and(|n| n.starts_with("codex_bengalfox"))
        })
    });
    assert_eq!(
        extra.and_then(|e| e["pct"].as_i64()),
        Some(20),
        "extra limit bar: {calm:#}"
    );
    let busy = row(&rows, &seeded[1].id);
    assert!(
        bar(busy, "primary")["cls"]
            .as_str()
            .unwrap_or("")
            .contains("warn"),
        "{busy:#}"
    );
    let locked = row(&rows, &seeded[2].id);
    let p = bar(locked, "primary");
    assert_eq!(
        (p["limit"].as_bool(), p["text"].as_str(), p["fill"].as_str()),
        (Some(true), Some("limit reached"), Some("100%")),
        "{p}"
    );
    assert!(p["cls"].as_str().unwrap_or("").contains("full"), "{p}");
    // Overview and session hygiene.
    let overview = b
        .eval("({ total: document.getElementById('ov-total').textContent, serving: document.getElementById('serving').textContent, cookie: document.cookie })")
        .await
        .expect("overview");
    assert_eq!(overview["total"], seeded.len().to_string());
    assert_eq!(overview["serving"], "Serving");
    assert!(
        !overview["cookie"]
            .as_str()
            .unwrap_or("")
            .contains("rotor_session"),
        "HttpOnly cookie visible to JS"
    );

    // The badge explains itself: why the account is locked and until when.
    let locked_id = &seeded[2].id;
    b.eval(&format!(
        "document.querySelector('[data-id=\"{locked_id}\"] [data-badge]').click(); true"
    ))
    .await
    .expect("click badge");
    let why = b
        .wait_for("(() => { const t = document.getElementById('toast'); return !t.hidden && t.textContent })()", Duration::from_secs(5))
        .await
        .expect("explain toast");
    let why = why.as_str().unwrap_or("");
    println!("explain toast: {why}");
    assert!(
        why.starts_with(locked_id.as_str()) && why.contains("until"),
        "{why}"
    );
    // Filter by status.
    b.eval("document.querySelector('[data-filter=rate_limited]').click(); true")
        .await
        .expect("click");
    let shown = b.wait_for("(() => { const r = document.querySelectorAll('#accounts .row'); return r.length === 1 && r[0].dataset.id })()", Duration::from_secs(5))
        .await
        .expect("filtered");
    assert_eq!(shown, seeded[2].id.as_str());
    b.eval("document.querySelector('[data-filter=all]').click(); true")
        .await
        .expect("click");

    // A row action through the UI, then a change made elsewhere arrives by polling.
    let busy_id = &seeded[1].id;
    b.eval(&format!(
        "document.querySelector('[data-id=\"{busy_id}\"] [data-action=disable]').click(); true"
    ))
    .await
    .expect("click");
    b.wait_for(&format!("document.querySelector('[data-id=\"{busy_id}\"] [data-badge]').dataset.badge === 'disabled'"), Duration::from_secs(8))
        .await
        .expect("the UI action took effect");
    assert_eq!(
        rig.get(&format!("/admin/accounts/{busy_id}")).await["status"],
        "disabled"
    );
    let calm_id = &seeded[0].id;
    rig.admin(
        reqwest::Method::POST,
        &format!("/admin/accounts/{calm_id}/disable"),
        None,
    )
    .await;
    b.wait_for(&format!("document.querySelector('[data-id=\"{calm_id}\"] [data-badge]').dataset.badge === 'disabled'"), Duration::from_secs(8))
        .await
        .expect("live update by polling");
    // Add an account by pasting its auth.json, then remove one (two clicks: confirm).
    let fresh = rig.sim.create_account(codex_rotor::sim::AccountSpec {
        email: Some("new@pasted.dev".into()),
        ..Default::default()
    });
    let paste = format!(
        "document.getElementById('add-open').click(); document.getElementById('add-text').value = {}; document.getElementById('add-submit').click(); true",
        json!(fresh.auth_json.to_string())
    );
    b.eval(&paste).await.expect("paste");
    b.wait_for("Array.from(document.querySelectorAll('#accounts .acct-label')).some(e => e.textContent === 'new@pasted.dev')", Duration::from_secs(8))
        .await
        .expect("the pasted account appears");
    let result = b
        .eval("document.getElementById('add-result').textContent")
        .await
        .expect("result");
    assert_eq!(result, "Imported 1 account(s).");
    b.eval("document.getElementById('add-dialog').close(); true")
        .await
        .expect("close");
    let gone = &seeded[5].id;
    let click = format!(
        "document.querySelector('[data-id=\"{gone}\"] [data-action=remove]').click(); true"
    );
    b.eval(&click).await.expect("first click arms");
    let armed = b
        .eval(&format!(
            "document.querySelector('[data-id=\"{gone}\"] [data-action=remove]').textContent"
        ))
        .await
        .expect("armed");
    assert_eq!(armed, "Confirm?");
    b.eval(&click).await.expect("second click removes");
    b.wait_for(
        &format!("!document.querySelector('[data-id=\"{gone}\"]')"),
        Duration::from_secs(8),
    )
    .await
    .expect("the removed account leaves the table");
    assert_eq!(
        rig.admin(
            reqwest::Method::GET,
            &format!("/admin/accounts/{gone}"),
            None
        )
        .await
        .0,
        404
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_accounts_stay_virtualised_and_fast() {
    let rig = Rig::start().await;
    let mut b = Browser::launch(1280, 900).await.expect("chromium starts");
    // One import of 1 000 accounts in the predecessor's accounts.json shape.
    let mut entries = Vec::new();
    let mut sim_ids = Vec::new();
    for i in 0..1000 {
        let email = format!("user{i:04}@pool.example");
        let c = rig.sim.create_account(codex_rotor::sim::AccountSpec {
            email: Some(email.clone()),
            ..Default::default()
        });
        let t = &c.auth_json["tokens"];
        entries.push(json!({ "token": t["access_token"], "refreshToken": t["refresh_token"], "email": email, "accountId": c.id }));
        sim_ids.push(c.id);
    }
    let file = json!({ "accounts": entries }).to_string();
    let r = rig
        .http
        .post(rig.url("/admin/accounts/import"))
        .bearer_auth(ADMIN_KEY)
        .body(file)
        .send()
        .await
        .expect("import");
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["imported"],
        1000,
        "{}",
        v.to_string().chars().take(400).collect::<String>()
    );
    // Some variety: a few accounts locked or busy, learnt by probing.
    let list = rig.get("/admin/accounts").await;
    let ids: Vec<String> = list["accounts"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 1000);
    for (i, sim_id) in sim_ids.iter().take(12).enumerate() {
        rig.sim.set_usage(
            sim_id,
            if i % 3 == 0 {
                100.0
            } else {
                20.0 + 6.0 * i as f64
            },
            10.0 + 5.0 * i as f64,
        );
        let id = list["accounts"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|a| a["identity"]["chatgpt_account_id"] == sim_id.as_str())
            })
            .and_then(|a| a["id"].as_str())
            .expect("id")
            .to_owned();
        rig.probe_until(&id, |v| !v["buckets"].as_array().is_none_or(Vec::is_empty))
            .await;
    }

    let t = std::time::Instant::now();
    let live = rig.get("/admin/live").await;
    let (live_ms, live_kib) = (t.elapsed().as_millis(), live.to_string().len() / 1024);
    println!("1000 accounts: GET /admin/live {live_ms} ms, {live_kib} KiB");
    let t0 = std::time::Instant::now();
    login(&mut b, &rig).await;
    b.wait_for(
        "document.getElementById('accounts-foot').textContent === '1000 accounts'",
        Duration::from_secs(15),
    )
    .await
    .expect("all accounts loaded");
    let first_paint = t0.elapsed();
    let m = b
        .eval("(async () => { const t = performance.now(); await window.Rotor.refresh(); return { cycle: performance.now() - t, render: window.Rotor.table.lastRenderMs, dom: document.querySelectorAll('#accounts .row').length }; })()")
        .await
        .expect("measure");
    let (cycle, render, dom) = (
        m["cycle"].as_f64().unwrap_or(f64::MAX),
        m["render"].as_f64().unwrap_or(f64::MAX),
        m["dom"].as_u64().unwrap_or(0),
    );
    println!(
        "1000 accounts: login→table {first_paint:?}, poll cycle {cycle:.1} ms, table render {render:.2} ms, {dom} rows in the DOM"
    );
    assert!(
        dom > 5 && dom < 80,
        "virtualised: only visible rows exist ({dom})"
    );
    assert!(render < 100.0, "a poll re-renders in {render} ms");
    assert!(
        cycle < 1500.0,
        "a whole poll (fetch + render) takes {cycle} ms"
    );
    // Scrolling reaches the last account (sorted by label: user0999).
    let last = b
        .wait_for("(() => { const b = document.getElementById('accounts'); b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll')); return Array.from(document.querySelectorAll('#accounts .acct-label')).some(e => e.textContent === 'user0999@pool.example'); })()", Duration::from_secs(5))
        .await;
    assert!(last.is_ok(), "the last row renders after scrolling");
    let dom_after = b
        .eval("document.querySelectorAll('#accounts .row').length")
        .await
        .expect("count");
    assert!(
        dom_after.as_u64() < Some(80),
        "still virtualised after scrolling: {dom_after}"
    );
    b.eval("document.getElementById('accounts').scrollTop = 0; true")
        .await
        .expect("scroll up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shot = screenshot_path("dashboard-1000");
    b.screenshot(&shot).await.expect("screenshot");
    println!("dashboard screenshot (1000 accounts): {}", shot.display());
    rig.shutdown().await;
}
