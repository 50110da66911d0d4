//! The account operations against a running pool, for the admin API (its
//! routes call these functions). The file is parsed and validated in full
//! before the pool is touched, so a bad file changes nothing; the pool then applies the one
//! import rule itself (`PoolHandle::add`, the same rule as the offline path: never an older
//! refresh token back, never re-activating a banned or disabled account).

use rotor_actors::{AddOutcome, Merged, PoolError, PoolHandle, Status, UnixMs};
use serde::Deserialize;
use serde_json::Value;

use super::import::{ImportError, parse_file};
use super::merge::MergeReport;

/// Why an admin import failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolImportError {
    /// The file is bad; nothing was imported. Render as 400 with this message.
    #[error(transparent)]
    Invalid(#[from] ImportError),
    /// The pool refused an account after `done` were added/updated (store failure, timeout).
    /// Render as 500/503; the report says what did land.
    #[error("the pool refused an account after {} were imported: {error}", done.added.len() + done.updated.len())]
    Pool {
        /// What was imported before the failure.
        done: MergeReport,
        /// The pool's error.
        error: PoolError,
    },
}

/// Imports every account of `bytes` (any format [`parse_file`] reads) into the running pool;
/// stops at the first account the pool refuses.
pub async fn import_into_pool(
    pool: &PoolHandle,
    bytes: &[u8],
    now: UnixMs,
) -> Result<MergeReport, PoolImportError> {
    let records = parse_file(bytes, now)?;
    let mut report = MergeReport::default();
    for rec in records {
        if let Err(error) = add_one(pool, rec, &mut report).await {
            return Err(PoolImportError::Pool {
                done: report,
                error,
            });
        }
    }
    Ok(report)
}

/// Adds one record to the pool by its import rule and notes the outcome in `report`.
pub async fn add_one(
    pool: &PoolHandle,
    rec: rotor_actors::AccountRecord,
    report: &mut MergeReport,
) -> Result<AddOutcome, PoolError> {
    let outcome = pool.add(rec).await?;
    match &outcome {
        AddOutcome::Added(id) => report.added.push(id.clone()),
        AddOutcome::Updated(id) | AddOutcome::KeptNewer(id) => {
            let status = match pool.account(id).await {
                Some(view) => view.status,
                None => Status::Active,
            };
            let merged = match outcome {
                AddOutcome::KeptNewer(_) => Merged::KeptNewer,
                _ => Merged::Unchanged,
            };
            report.note(id, status, merged);
        }
    }
    Ok(outcome)
}

/// The JSON body of "add one account" (`POST /admin/accounts`): exactly one source. `Debug`
/// redacts the tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// A Codex CLI `auth.json` document.
    #[serde(default)]
    pub auth_json: Option<Value>,
    /// A refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// An access token (JWT).
    #[serde(default)]
    pub access_token: Option<String>,
    /// Optional operator label.
    #[serde(default)]
    pub label: Option<String>,
}

impl std::fmt::Debug for AddRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |present: bool| if present { "<redacted>" } else { "-" };
        f.debug_struct("AddRequest")
            .field("auth_json", &redact(self.auth_json.is_some()))
            .field("refresh_token", &redact(self.refresh_token.is_some()))
            .field("access_token", &redact(self.access_token.is_some()))
            .field("label", &self.label)
            .finish()
    }
}

impl AddRequest {
    /// The request as an import file, so it passes through the same validation.
    pub fn to_import_bytes(&self) -> Result<Vec<u8>, ImportError> {
        let mut obj = match (&self.auth_json, &self.refresh_token, &self.access_token) {
            (Some(Value::Object(doc)), None, None) => doc.clone(),
            (Some(_), None, None) => {
                return Err(ImportError::field(
                    "body",
                    "auth_json",
                    "expected a JSON object",
                ));
            }
            (None, rt, at) if rt.is_some() || at.is_some() => {
                let mut m = serde_json::Map::new();
                if let Some(rt) = rt {
                    m.insert("refresh_token".into(), Value::String(rt.clone()));
                }
                if let Some(at) = at {
                    m.insert("access_token".into(), Value::String(at.clone()));
                }
                m
            }
            _ => {
                return Err(ImportError::at(
                    "body",
                    "give exactly one of `auth_json`, or `refresh_token` and/or `access_token`",
                ));
            }
        };
        if let Some(label) = &self.label {
            obj.insert("label".into(), Value::String(label.clone()));
        }
        Ok(Value::Object(obj).to_string().into_bytes())
    }
}

/// Adds one account from an [`AddRequest`].
pub async fn add_to_pool(
    pool: &PoolHandle,
    req: &AddRequest,
    now: UnixMs,
) -> Result<MergeReport, PoolImportError> {
    import_into_pool(pool, &req.to_import_bytes()?, now).await
}

/// The export document of the pool's accounts (full, or `minimal` = refresh tokens + labels).
/// Contains secrets: only for the admin who asked.
pub async fn export_from_pool(pool: &PoolHandle, minimal: bool) -> Value {
    let records = pool.export().await;
    if minimal {
        super::export::minimal(&records)
    } else {
        super::export::full(&records)
    }
}
