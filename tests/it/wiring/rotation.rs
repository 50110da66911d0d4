//! `least_used` end to end (daemon + simulator): once upstream's headers tell an account's
//! primary window reset, the pool keeps spending that account's quota before it resets instead
//! of spreading requests over accounts whose window has not started.

use crate::support::{responses_body, start_env};

#[tokio::test]
async fn least_used_keeps_using_the_account_whose_window_resets_first() {
    let env = start_env(2).await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let resp = env.responses(&responses_body(false)).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.text().await;
        served.push(env.last_record().account_id.expect("an account served"));
    }
    assert!(
        served.iter().all(|a| *a == served[0]),
        "the account with a known reset serves until it resets: {served:?}"
    );
    let first = env.view_of(&env.sim_id_of(&served[0]).await).await;
    let reset = first
        .quota
        .primary
        .as_ref()
        .and_then(|b| b.reset_at)
        .expect("the simulator reported the primary reset");
    assert!(reset > 0);
    env.shutdown().await;
}
