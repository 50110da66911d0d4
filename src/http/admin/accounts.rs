//! Per-account admin endpoints: read one or all accounts, ask why one is (not) available, and
//! act on it — enable, disable, remove, probe its quota now. Each action is a message to the
//! account's actor through the pool; the answer is the account as it stands afterwards.

use super::{Admin, AdminError, cluster, view};
use crate::http::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// `GET /admin/accounts`: every account, in the pool's order.
pub async fn list(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let now = state.now_ms();
    let accounts = state.pool().accounts().await;
    let list: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let mut j = view::account(a, now);
            cluster::add_owner(&state, &a.id, &mut j);
            j
        })
        .collect();
    Json(json!({ "count": list.len(), "accounts": list }))
}

/// `GET /admin/accounts/{id}`: one account.
pub async fn one(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    account_json(&state, id).await
}

/// `GET /admin/accounts/{id}/explain`: whether the account can serve now, every reason it
/// cannot, and until when.
pub async fn explain(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let e = state
        .pool()
        .explain(&id)
        .await
        .ok_or_else(|| AdminError::NoSuchAccount(id.clone()))?;
    let now = state.now_ms();
    let mut j = serde_json::to_value(&e).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut j {
        map.insert("id".into(), json!(id));
        let until_in = e.until.map(|u| view::human_secs((u - now) / 1000));
        map.insert("until_in".into(), json!(until_in));
    }
    cluster::add_owner(&state, &id, &mut j);
    Ok(Json(j))
}

/// `POST /admin/accounts/{id}/enable`.
pub async fn enable(
    a: Admin,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<Value>, AdminError> {
    set_enabled(a, state, id, true).await
}

/// `POST /admin/accounts/{id}/disable`.
pub async fn disable(
    a: Admin,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<Value>, AdminError> {
    set_enabled(a, state, id, false).await
}

/// Switches an account on or off and answers with the account afterwards.
async fn set_enabled(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    enabled: bool,
) -> Result<Json<Value>, AdminError> {
    exists(&state, &id).await?;
    state
        .pool()
        .set_enabled(&id, enabled)
        .await
        .map_err(|e| AdminError::Pool(e.to_string()))?;
    account_json(&state, id).await
}

/// `DELETE /admin/accounts/{id}`: removes the account and its file.
pub async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    exists(&state, &id).await?;
    state
        .pool()
        .remove(&id)
        .await
        .map_err(|e| AdminError::Pool(e.to_string()))?;
    Ok(Json(json!({ "removed": id })))
}

/// `POST /admin/accounts/{id}/probe`: asks the account to read its quota from the usage
/// endpoint now. The probe runs in the background; the answer is 202 and the account as it
/// stands, and the next read shows the result.
pub async fn probe(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, AdminError> {
    exists(&state, &id).await?;
    state
        .pool()
        .probe(&id)
        .await
        .map_err(|e| AdminError::Pool(e.to_string()))?;
    let v = state
        .pool()
        .account(&id)
        .await
        .ok_or_else(|| AdminError::NoSuchAccount(id.clone()))?;
    let mut account = view::account(&v, state.now_ms());
    cluster::add_owner(&state, &id, &mut account);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "probing": id, "account": account })),
    ))
}

/// 404 unless the pool has an account with this id.
async fn exists(state: &AppState, id: &str) -> Result<(), AdminError> {
    match state.pool().account(id).await {
        Some(_) => Ok(()),
        None => Err(AdminError::NoSuchAccount(id.to_owned())),
    }
}

/// One account as the admin API shows it, or 404 naming the id.
async fn account_json(state: &AppState, id: String) -> Result<Json<Value>, AdminError> {
    let v = state
        .pool()
        .account(&id)
        .await
        .ok_or_else(|| AdminError::NoSuchAccount(id.clone()))?;
    let mut j = view::account(&v, state.now_ms());
    cluster::add_owner(state, &id, &mut j);
    Ok(Json(j))
}
