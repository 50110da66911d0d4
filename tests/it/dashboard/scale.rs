//! The dashboard at 200 accounts in a real Chromium 1 400 px wide (issue 15, item 14): every
//! column sorts (natural order for text, numbers as numbers, dates as dates), a "serving now"
//! view pins the accounts holding leases, recent requests name accounts by label, "until" times
//! days away carry their date, ban reasons can be read in full, nothing scrolls sideways, the
//! headroom card says how many accounts it is computed from, an unknown plan says so, and
//! quarantined account files are listed (and counted by `/readyz`). Each test builds the scene
//! of `dashboard/scene.rs`, asserts through the DOM and saves a screenshot.

use super::scene::{self, ACCOUNTS, QUARANTINED, QUARANTINED_SECRET, Scene, WIDTH};
use crate::admin::rig::Rig;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Clicks the header of column `key`, then reads the rows from the top.
async fn sort_by(s: &mut Scene, key: &str) -> Vec<Value> {
    s.b.eval(&format!(
        "document.querySelector('#accounts-head [data-sort={key}]').click(); true"
    ))
    .await
    .expect("click header");
    s.rows().await
}

/// `pick` of every account, sorted the way a descending column must show them (values first,
/// largest first; accounts without a value last), cut to `n`.
fn descending(accts: &HashMap<String, Value>, pick: Pick, n: usize) -> Vec<Option<f64>> {
    let mut all: Vec<Option<f64>> = accts.values().map(pick).collect();
    all.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => y.total_cmp(x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    all.truncate(n);
    all
}

/// Types `q` into the search box.
async fn search(s: &mut Scene, q: &str) {
    s.b.eval(&format!(
        "(() => {{ const q = document.getElementById('search'); q.value = {}; q.dispatchEvent(new Event('input')); return true; }})()",
        json!(q)
    ))
    .await
    .expect("search");
}

/// What a column shows of an account in the admin view, as a number.
type Pick = fn(&Value) -> Option<f64>;

/// The id of a row.
fn id(r: &Value) -> String {
    r["id"].as_str().unwrap_or_default().to_owned()
}

/// The primary bucket's used % of an account in the admin view.
fn primary_used(a: &Value) -> Option<f64> {
    a["buckets"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == "primary")?["used_percent"]
        .as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_sorts_two_hundred_accounts_naturally_numerically_and_by_date() {
    let mut s = scene::build().await;
    let rows = s.rows().await;
    assert!(rows.len() > 10, "{rows:?}");
    let labels: Vec<String> = rows.iter().map(|r| r["label"].to_string()).collect();
    let natural: Vec<String> = (1..=rows.len())
        .map(|n| json!(format!("user{n}@pool.example")).to_string())
        .collect();
    assert_eq!(labels, natural, "default order: labels in natural order");
    let rows = sort_by(&mut s, "label").await;
    let labels: Vec<String> = rows.iter().map(|r| r["label"].to_string()).collect();
    let reverse: Vec<String> = (0..rows.len())
        .map(|i| json!(format!("user{}@pool.example", ACCOUNTS - i)).to_string())
        .collect();
    assert_eq!(labels, reverse, "a second click reverses the order");

    let accts = s.accounts().await;
    let columns: [(&str, Pick); 6] = [
        ("leases", |a| a["leases"].as_f64()),
        ("requests", |a| a["usage"]["requests"].as_f64()),
        ("tokens", |a| {
            Some(a["usage"]["input_tokens"].as_f64()? + a["usage"]["output_tokens"].as_f64()?)
        }),
        ("primary", primary_used),
        ("secondary", |a| {
            a["buckets"]
                .as_array()?
                .iter()
                .find(|b| b["name"] == "secondary")?["used_percent"]
                .as_f64()
        }),
        // A date: the newest first, compared as times (not as the "3m ago" text shown).
        ("last_used", |a| a["usage"]["last_used"].as_f64()),
    ];
    for (key, pick) in columns {
        let rows = sort_by(&mut s, key).await;
        let shown: Vec<Option<f64>> = rows.iter().map(|r| pick(&accts[&id(r)])).collect();
        assert_eq!(
            shown,
            descending(&accts, pick, rows.len()),
            "sorted by {key}, largest first"
        );
    }
    assert!(
        accts
            .values()
            .filter(|a| !a["usage"]["last_used"].is_null())
            .count()
            > 3,
        "enough accounts were used to tell dates apart"
    );
    // Status groups: a second click puts the last statuses (banned, then rate limited) on top.
    sort_by(&mut s, "status").await;
    let rows = sort_by(&mut s, "status").await;
    let top: Vec<String> = rows[..3]
        .iter()
        .map(|r| accts[&id(r)]["derived_status"].to_string())
        .collect();
    assert_eq!(top, ["\"banned\"", "\"banned\"", "\"rate_limited\""]);
    s.shot("dashboard-200-sorted").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_now_view_puts_the_accounts_holding_leases_on_top() {
    let mut s = scene::build().await;
    let accts = s.accounts().await;
    let leased: HashSet<String> = accts
        .iter()
        .filter(|(_, a)| a["leases"].as_u64() > Some(0))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!leased.is_empty(), "the held requests hold leases");
    s.b.eval("document.getElementById('serving-now').click(); true")
        .await
        .expect("click serving now");
    let rows = s.rows().await;
    let top: HashSet<String> = rows[..leased.len()].iter().map(id).collect();
    assert_eq!(top, leased, "accounts holding leases come first");
    let label =
        s.b.eval("document.getElementById('serving-now').textContent")
            .await
            .expect("label");
    assert!(
        label
            .as_str()
            .is_some_and(|l| l.contains(&leased.len().to_string())),
        "the view says how many accounts serve now: {label}"
    );
    s.shot("dashboard-200-serving-now").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_requests_name_accounts_by_label() {
    let mut s = scene::build().await;
    let reqs = s.rig.get("/admin/requests?limit=25").await;
    let mut want: Vec<String> = reqs["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| s.labels[r["account_id"].as_str().unwrap_or_default()].clone())
        .collect();
    assert!(want.len() >= 12, "{reqs}");
    s.b.wait_for(
        &format!(
            "document.querySelectorAll('#requests tr').length === {}",
            want.len()
        ),
        Duration::from_secs(8),
    )
    .await
    .expect("requests listed");
    let shown = s
        .b
        .eval("Array.from(document.querySelectorAll('#requests tr')).map(tr => tr.children[4].textContent)")
        .await
        .expect("cells");
    let mut shown: Vec<String> = serde_json::from_value(shown).expect("strings");
    shown.sort();
    want.sort();
    assert_eq!(shown, want, "the account column shows labels, not ids");
    s.shot("dashboard-200-requests").await;
    s.end().await;
}

/// JS that formats unix ms `at` the way a date days away must read: "Mon 8 Dec 14:05".
fn dated(at: i64) -> String {
    format!(
        "(() => {{ const d = new Date({at}); return ['Sun','Mon','Tue','Wed','Thu','Fri','Sat'][d.getDay()] + ' ' + d.getDate() + ' ' + \
         ['Jan','Feb','Mar','Apr','May','Jun','Jul','Aug','Sep','Oct','Nov','Dec'][d.getMonth()] + ' ' + \
         String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0'); }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_times_days_away_carry_their_date() {
    let mut s = scene::build().await;
    let id = s.weekly_locked.clone();
    let explain = s.rig.get(&format!("/admin/accounts/{id}/explain")).await;
    let until = explain["until"].as_i64().expect("locked until a time");
    let now = s.rig.daemon.state.now_ms();
    assert!(until - now > 86_400_000, "days away: {explain}");
    let want = s.b.eval(&dated(until)).await.expect("format");
    let want = want.as_str().unwrap_or_default().to_owned();
    search(&mut s, "user150@").await;
    s.b.eval(&format!(
        "document.querySelector('[data-id=\"{id}\"] [data-badge]').click(); true"
    ))
    .await
    .expect("click badge");
    let toast = s
        .b
        .wait_for(
            "(() => { const t = document.getElementById('toast'); return !t.hidden && t.textContent })()",
            Duration::from_secs(5),
        )
        .await
        .expect("explain toast");
    assert!(
        toast
            .as_str()
            .is_some_and(|t| t.contains(&format!("until {want}"))),
        "{toast} should say until {want}"
    );
    let pool = s.rig.get("/admin/pool").await;
    let soon = pool["soonest_reset_at"].as_i64().expect("soonest reset");
    let want = s.b.eval(&dated(soon)).await.expect("format");
    let sub =
        s.b.eval("document.getElementById('ov-reset-sub').textContent")
            .await
            .expect("card");
    assert_eq!(
        sub.as_str(),
        Some(format!("at {}", want.as_str().unwrap_or_default()).as_str())
    );
    s.shot("dashboard-200-until").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_reasons_can_be_read_in_full() {
    let mut s = scene::build().await;
    let id = s.banned[0].clone();
    let a = s.accounts().await.remove(&id).expect("banned account");
    let reason = a["status_reason"].as_str().unwrap_or_default().to_owned();
    let error = a["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.len() + error.len() > 40, "{a:#}");
    search(&mut s, "user160@").await;
    let title =
        s.b.wait_for(
            &format!("(document.querySelector('[data-id=\"{id}\"] .acct-err') || {{}}).title"),
            Duration::from_secs(5),
        )
        .await
        .expect("the row shows the problem");
    let full = if error.is_empty() { &reason } else { &error };
    assert_eq!(
        title.as_str(),
        Some(full.as_str()),
        "the tooltip holds it all"
    );
    s.b.eval(&format!(
        "document.querySelector('[data-id=\"{id}\"] [data-action=details]').click(); true"
    ))
    .await
    .expect("open details");
    let details = s
        .b
        .wait_for(
            "(() => { const d = document.getElementById('details-dialog'); return d.open && d.textContent })()",
            Duration::from_secs(5),
        )
        .await
        .expect("details view");
    let text = details.as_str().unwrap_or_default();
    assert!(
        text.contains(&reason) && text.contains(&error),
        "details: {text}"
    );
    let clipped = s
        .b
        .eval("Array.from(document.querySelectorAll('#details-dialog *')).filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible').length")
        .await
        .expect("clipped");
    assert_eq!(clipped, 0, "nothing in the details view is cut off");
    s.shot("dashboard-200-details").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_accounts_need_no_horizontal_scroll_at_1400_px() {
    let mut s = scene::build().await;
    let m = s
        .b
        .eval(
            r#"(() => { const w = document.querySelector('.table-wrap'), body = document.getElementById('accounts');
              const cut = Array.from(document.querySelectorAll('#accounts .row')).filter(r =>
                Array.from(r.querySelectorAll('button')).some(b => b.getBoundingClientRect().right > r.getBoundingClientRect().right + 0.5)).length;
              return { page: document.documentElement.scrollWidth, wrap: w.scrollWidth - w.clientWidth,
                body: body.scrollWidth - body.clientWidth, cut }; })()"#,
        )
        .await
        .expect("measure");
    s.shot("dashboard-200").await;
    assert!(
        m["page"].as_u64() <= Some(u64::from(WIDTH)),
        "the page scrolls sideways: {m}"
    );
    assert_eq!(
        (&m["wrap"], &m["body"]),
        (&json!(0), &json!(0)),
        "the accounts table scrolls sideways: {m}"
    );
    assert_eq!(m["cut"], 0, "row buttons cut off: {m}");
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headroom_card_says_how_many_accounts_report() {
    let mut s = scene::build().await;
    let accts = s.accounts().await;
    let serving: Vec<&Value> = accts
        .values()
        .filter(|a| {
            !["disabled", "banned", "expired"].contains(&a["derived_status"].as_str().unwrap_or(""))
        })
        .collect();
    let used: Vec<f64> = serving.iter().filter_map(|a| primary_used(a)).collect();
    assert!(!used.is_empty() && used.len() < serving.len());
    let left = (100.0 - used.iter().sum::<f64>() / used.len() as f64).round();
    let want = format!(
        "{left}% of 5h left · {} of {} accounts reporting",
        used.len(),
        serving.len()
    );
    let text =
        s.b.eval("document.getElementById('ov-headroom').textContent")
            .await
            .expect("card");
    assert!(
        text.as_str().is_some_and(|t| t.starts_with(&want)),
        "{text} should start with {want}"
    );
    s.shot("dashboard-200-cards").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_a_plan_says_plan_unknown() {
    let mut s = scene::build().await;
    search(&mut s, "user7@").await;
    let rows = s.rows().await;
    let first = s.no_plan[0].clone();
    let r = rows
        .iter()
        .find(|r| id(r) == first)
        .expect("user7 is listed");
    let sub = r["sub"].as_str().unwrap_or_default();
    assert!(
        sub.contains("plan unknown") && !sub.contains("free"),
        "{sub}"
    );
    search(&mut s, "plan unknown").await;
    let found: HashSet<String> = s.rows().await.iter().map(id).collect();
    assert_eq!(
        found,
        s.no_plan.iter().cloned().collect(),
        "searchable as shown"
    );
    s.shot("dashboard-200-plan-unknown").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_files_are_listed_and_counted_by_readyz() {
    let mut s = scene::build().await;
    let listed = s
        .b
        .wait_for(
            "(() => { const q = document.getElementById('quarantine'); return !q.hidden && Array.from(q.querySelectorAll('li')).map(li => li.textContent); })()",
            Duration::from_secs(5),
        )
        .await
        .expect("quarantine listed");
    let listed: Vec<String> = serde_json::from_value(listed).expect("strings");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (file, text) in QUARANTINED.iter().zip(&listed) {
        assert!(
            text.contains(file) && text.contains("invalid JSON"),
            "{text}"
        );
    }
    let html =
        s.b.eval("document.documentElement.outerHTML")
            .await
            .expect("html");
    assert!(
        !html.to_string().contains(QUARANTINED_SECRET),
        "secret shown"
    );
    let live = s.rig.get("/admin/live").await;
    assert!(
        !live.to_string().contains(QUARANTINED_SECRET),
        "secret served"
    );
    assert_eq!(s.rig.get("/admin/pool").await["quarantined"], 2);
    let r = reqwest::get(s.rig.url("/readyz")).await.expect("readyz");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["quarantined"], 2, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|t| t.contains("2 account files quarantined")),
        "{body}"
    );
    s.shot("dashboard-200-quarantine").await;
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_when_every_account_file_was_quarantined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join(codex_rotor::store::ACCOUNTS_DIR);
    std::fs::create_dir_all(&accounts).expect("dir");
    for f in QUARANTINED {
        std::fs::write(accounts.join(f), b"\x00\x01 not an account").expect("write");
    }
    let rig = Rig::start_in(dir, Default::default(), |_| {}).await;
    let r = reqwest::get(rig.url("/readyz")).await.expect("readyz");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        (&body["ready"], &body["quarantined"]),
        (&json!(false), &json!(2)),
        "{body}"
    );
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no account") && reason.contains("2 account files quarantined"),
        "{reason}"
    );
    rig.shutdown().await;
}

/// The details view says what holds an account off requests and until when, from the account's
/// own explanation (issue 17 item 4): the weekly-locked account shows a "Held: Quota" line with
/// the hold's reason and its future end, the same hold the admin explain answer gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_details_view_says_what_holds_an_account_and_until_when() {
    let mut s = scene::build().await;
    let id = s.weekly_locked.clone();
    let explain = s.rig.get(&format!("/admin/accounts/{id}/explain")).await;
    let hold = explain["holds"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["kind"] == "quota"))
        .cloned()
        .unwrap_or_else(|| panic!("a quota hold: {explain:#}"));
    let until = hold["until"].as_u64().expect("the hold ends by itself");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        until > now + 3600 * 1000,
        "a weekly lock, not a short one: {hold}"
    );
    // The scene locked account 150's weekly window; only searched-for rows are drawn.
    search(&mut s, "user150@").await;
    s.b.eval(&format!(
        "document.querySelector('[data-id=\"{id}\"] [data-action=details]').click(); true"
    ))
    .await
    .expect("open details");
    let text = s
        .b
        .wait_for(
            "(() => { const d = document.getElementById('details-dialog'); return d.open && d.textContent.includes('Held: ') && d.textContent })()",
            Duration::from_secs(5),
        )
        .await
        .expect("details view with its holds");
    let text = text.as_str().unwrap_or_default();
    let reason = hold["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{hold}");
    assert!(
        text.contains(&format!("Held: Quota{reason} — until ")),
        "details: {text}"
    );
    let line = &text[text.find("Held: Quota").unwrap_or(0)..];
    assert!(line.contains("(in "), "the end lies ahead: {text}");
    s.end().await;
}
