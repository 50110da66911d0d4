//! `GET /admin/cluster` (the node, its live peers and who owns each account, as
//! [`crate::cluster::report`] reads the node's view) and the `owner` field the account answers
//! carry when clustered. Only reads the node's `ClusterView`; the lease loop keeps it current.
//! On a single node the answer is `{"enabled": false}` and account answers carry no `owner`.

use super::Admin;
use crate::cluster::Placement;
use crate::cluster::report::report;
use crate::http::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// `GET /admin/cluster`.
pub async fn get(_: Admin, State(state): State<AppState>) -> Json<Value> {
    Json(match state.cluster() {
        Some(view) => report(view),
        None => json!({ "enabled": false }),
    })
}

/// Adds `owner` (the owning node's id, `null` when no live node owns it) to an account
/// answer `j` whose `id` is `account`, when the daemon is clustered; a single node's answers
/// are left as they were.
pub fn add_owner(state: &AppState, account: &str, j: &mut Value) {
    let (Some(view), Value::Object(map)) = (state.cluster(), j) else {
        return;
    };
    let owner = match view.placement(account) {
        Placement::Local => Some(view.node_id().to_owned()),
        Placement::Peer(p) => Some(p.id),
        Placement::Nobody => None,
    };
    map.insert("owner".into(), json!(owner));
}
