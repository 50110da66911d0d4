//! "Sign in with ChatGPT" in the real dashboard (headless Chromium over the DevTools protocol,
//! daemon and simulator on 127.0.0.1): the button starts a login through the daemon's own
//! router and opens the authorize URL; the login completes either by pasting the address the
//! sign-in ended on (Codex's registered redirect is `localhost:1455`, which is not the daemon)
//! or by the browser coming back to the daemon's `/auth/callback`, and the new account shows up.

use crate::admin::rig::{ADMIN_KEY, Rig};
use crate::dashboard::cdp::Browser;
use serde_json::json;
use std::time::Duration;

/// Logs the browser into the dashboard and replaces `window.open` with a recorder, so the test
/// plays the operator's sign-in tab itself.
async fn open_dashboard(b: &mut Browser, rig: &Rig) {
    b.goto(&rig.url("/")).await.expect("dashboard loads");
    b.wait_for(
        "!document.getElementById('login').hidden",
        Duration::from_secs(30),
    )
    .await
    .expect("login form");
    let submit = format!(
        "document.getElementById('login-key').value = {}; document.getElementById('login-form').requestSubmit(); true",
        json!(ADMIN_KEY)
    );
    b.eval(&submit).await.expect("submit");
    b.wait_for(
        "!document.getElementById('app').hidden",
        Duration::from_secs(30),
    )
    .await
    .expect("logged in");
    b.eval("window.open = (u) => { window.__opened = u; return null; }; true")
        .await
        .expect("window.open recorded");
}

/// Clicks "Sign in with ChatGPT" and returns the URL the page opened.
async fn click_sign_in(b: &mut Browser) -> String {
    b.eval("window.__opened = null; document.getElementById('signin-open').click(); true")
        .await
        .expect("click");
    let url = b
        .wait_for("window.__opened", Duration::from_secs(30))
        .await
        .expect("the authorize URL is opened");
    url.as_str().expect("a URL string").to_owned()
}

/// The operator's sign-in tab: the simulator approves at once; returns where it redirects.
async fn sign_in(url: &str) -> String {
    let tab = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let landed = tab.get(url).send().await.expect("authorize");
    assert_eq!(landed.status(), 302);
    landed.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_chatgpt_adds_accounts_from_the_dashboard() {
    let rig = Rig::start().await;
    let mut b = Browser::launch(1280, 900).await.expect("chromium starts");
    open_dashboard(&mut b, &rig).await;
    let label = b
        .eval("document.getElementById('signin-open').textContent")
        .await
        .expect("button");
    assert_eq!(label, "Sign in with ChatGPT");

    // 1. The sign-in ends on Codex's localhost redirect: the operator pastes that address.
    let url = click_sign_in(&mut b).await;
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", rig.sim.base_url())),
        "{url}"
    );
    let location = sign_in(&url).await;
    assert!(location.starts_with("http://localhost:1455/auth/callback?"));
    let paste = format!(
        "document.getElementById('signin-url').value = {}; document.getElementById('signin-submit').click(); true",
        json!(location)
    );
    b.eval(&paste).await.expect("paste");
    let done = b
        .wait_for(
            "document.getElementById('signin-result').textContent.startsWith('Account added') && document.getElementById('signin-result').textContent",
            Duration::from_secs(30),
        )
        .await
        .expect("the login completes");
    assert!(
        done.as_str().is_some_and(|t| t.contains("@sim.example")),
        "{done}"
    );
    b.wait_for(
        "document.querySelectorAll('#accounts .row').length === 1",
        Duration::from_secs(30),
    )
    .await
    .expect("the account appears in the table");
    b.eval("document.getElementById('signin-dialog').close(); true")
        .await
        .expect("close");

    // 2. The browser comes back to the daemon's own callback: the dialog sees the account.
    let url = click_sign_in(&mut b).await;
    // The `close` event of the dialog closed above is queued; under load it can arrive after the
    // new dialog started watching (it did in CI). Deliver one late on purpose: the open dialog
    // must keep watching.
    b.eval("document.getElementById('signin-dialog').dispatchEvent(new Event('close')); true")
        .await
        .expect("late close event");
    let location = sign_in(&url).await;
    let query = location.split_once('?').expect("query").1;
    let back = reqwest::Client::new()
        .get(rig.url(&format!("/auth/callback?{query}")))
        .send()
        .await
        .expect("callback");
    assert_eq!(back.status(), 200);
    b.wait_for(
        "document.getElementById('signin-result').textContent === 'Account added.'",
        Duration::from_secs(30),
    )
    .await
    .expect("the dialog notices the new account");
    b.wait_for(
        "document.querySelectorAll('#accounts .row').length === 2",
        Duration::from_secs(30),
    )
    .await
    .expect("both accounts in the table");
    assert_eq!(rig.daemon.state.pool().accounts().await.len(), 2);
    rig.shutdown().await;
}
