//! Account import and export. Import accepts every format the accounts importer parses (the
//! predecessor's `accounts.json`, a Codex CLI `auth.json`, plain token lists) as the raw request
//! body and adds each account by the pool's one import rule — to this node's pool, or on a
//! cluster node into the shared database, where the account's owner reloads it (a new one is
//! claimed by the node that should own it). The answer is the
//! import report the offline `accounts import` prints (`added`, `updated`, `kept_newer`,
//! `kept_inactive`) plus `imported` and per-entry `results`. Export writes the predecessor's
//! `accounts.json` shape (`{"accounts": [...]}`), which the importer reads back: a single
//! node's pool, or on a cluster node every account in the shared database, whichever node
//! owns it (the records as stored, tokens opened with the store key: the tokens a node serves
//! are durable there first). It is the one admin answer that carries tokens, so it is marked
//! `no-store`.

use super::{Admin, AdminError};
use crate::http::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /admin/accounts/import`: body = the file to import, in any supported format. The body
/// is read after the admin key was accepted, and never past `server.max_body_bytes`.
pub async fn import(
    _: Admin,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Json<Value>, AdminError> {
    let limit = state.config().server.max_body_bytes;
    let body = crate::request_body::read(&headers, body, limit)
        .await
        .map_err(|e| match e {
            crate::request_body::BodyError::TooLarge { .. } => {
                AdminError::TooLarge(format!("{e} (server.max_body_bytes)"))
            }
            crate::request_body::BodyError::Broken(_) => AdminError::BadRequest(e.to_string()),
        })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AdminError::BadRequest(
            "empty body: paste an accounts.json, a Codex CLI auth.json or a token list".into(),
        ));
    }
    let records = crate::accounts::import::parse_file(&body, state.now_ms())
        .map_err(|e| AdminError::BadRequest(format!("cannot import: {e}")))?;
    if records.is_empty() {
        return Err(AdminError::BadRequest("the file holds no account".into()));
    }
    let mut results = Vec::with_capacity(records.len());
    let mut report = crate::accounts::merge::MergeReport::default();
    let mut added = 0usize;
    for rec in records {
        let label = rec
            .identity
            .email
            .clone()
            .or_else(|| rec.identity.label.clone());
        match crate::accounts::add_one(state.add_target(), rec, &mut report).await {
            Ok(outcome) => {
                added += 1;
                results.push(json!({ "label": label, "outcome": outcome }));
            }
            Err(e) => results.push(json!({ "label": label, "error": e.to_string() })),
        }
    }
    // The report is the shape the offline `accounts import` prints; `imported` and `results`
    // say per entry what happened (and which failed).
    let mut answer = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    answer["imported"] = json!(added);
    answer["results"] = json!(results);
    Ok(Json(answer))
}

/// Query of `GET /admin/accounts/export`.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// Only these account ids (comma-separated); all when absent.
    pub ids: Option<String>,
}

/// `GET /admin/accounts/export[?ids=a,b]`: the accounts with their tokens, as the
/// predecessor's `accounts.json` (on a cluster node, every account of the cluster).
pub async fn export(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AdminError> {
    let Query(q) = q?;
    let wanted: Option<Vec<&str>> = q
        .ids
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    let records = match state.shared_store() {
        Some(store) => store
            .records()
            .await
            .map_err(|e| AdminError::Pool(format!("the shared store: {e}")))?,
        None => state.pool().export().await,
    };
    let accounts: Vec<Value> = records
        .iter()
        .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&r.id.as_str())))
        .map(rotor_actors::legacy::export)
        .collect();
    let body = Json(json!({ "accounts": accounts }));
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"accounts.json\"",
            ),
        ],
        body,
    )
        .into_response())
}
