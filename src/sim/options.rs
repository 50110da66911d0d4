//! The simulator's public vocabulary: how it is configured ([`SimOptions`]), how accounts are
//! asked for ([`AccountSpec`]) and handed back ([`CreatedAccount`]), how faults are scripted
//! ([`FaultSpec`]) and what it counts ([`Counters`]). The same types travel as JSON over the
//! `/sim/` control API, so every one of them is `Serialize + Deserialize`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Nominal length of the primary (5 h) window, before time scaling.
pub const PRIMARY_WINDOW_SECS: u64 = 5 * 3600;
/// Nominal length of the secondary (weekly) window, before time scaling.
pub const SECONDARY_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// Id of the optional extra limit that applies to "spark"/"bengalfox" models.
pub const EXTRA_LIMIT_ID: &str = "codex_bengalfox";

/// How a simulator instance behaves. Every default is what a test or the demo wants without
/// thinking: generous quotas, real-time windows, one-hour access tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimOptions {
    /// Seed of every pseudo-random choice (answer text, probabilistic faults, token ids), so a
    /// run can be replayed exactly.
    pub seed: u64,
    /// Divides window lengths and token lifetimes: at 60 a 5 h window passes in 5 minutes.
    /// Reset times are still reported as real unix seconds.
    pub time_scale: f64,
    /// Default tokens an account may use per primary (5 h) window.
    pub primary_quota_tokens: u64,
    /// Default tokens an account may use per secondary (weekly) window.
    pub secondary_quota_tokens: u64,
    /// Default tokens per window of the extra `codex_bengalfox` limit; `None` = accounts have
    /// no extra limit unless their spec asks for one.
    pub extra_quota_tokens: Option<u64>,
    /// Lifetime of an access token before time scaling.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// How many words an ordinary answer has (more words = more deltas and output tokens).
    pub answer_words: usize,
    /// Pause between two SSE events of a normal answer; zero sends the whole stream at once.
    #[serde(with = "humantime_serde")]
    pub event_delay: Duration,
    /// When true, a model outside [`SimOptions::models`] is refused with 400 as upstream does.
    pub reject_unknown_models: bool,
    /// The model catalog served by `GET /backend-api/codex/models`.
    pub models: Vec<String>,
    /// Accept the bodies the real backend refuses (a missing `store: false`, `stream: false`,
    /// a string `input`, …) and answer `stream: false` with one JSON object. Only the
    /// simulator's own tests of that JSON answer set it; every test of the daemon runs strict.
    pub lenient: bool,
    /// List the output items in `response.completed`; by default its `output` is `[]`, as the
    /// real backend routinely sends it (the items are in the `response.output_item.done`
    /// events).
    pub completed_output: bool,
    /// Models that refuse an older Codex: `(model, version)` pairs; a request for `model`
    /// whose `version` header is missing or older than `version` is answered `400 … requires
    /// a newer version of Codex`, as the real backend answers new models (strict mode only).
    pub min_client_version: Vec<(String, String)>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            time_scale: 1.0,
            primary_quota_tokens: 1_000_000,
            secondary_quota_tokens: 10_000_000,
            extra_quota_tokens: None,
            access_token_ttl: Duration::from_secs(3600),
            answer_words: 8,
            event_delay: Duration::ZERO,
            reject_unknown_models: false,
            models: [
                "gpt-5.5",
                "gpt-5.4",
                "gpt-5.3-codex",
                "gpt-5.3-codex-spark",
                "gpt-5.4-mini",
            ]
            .map(String::from)
            .to_vec(),
            lenient: false,
            completed_output: false,
            min_client_version: Vec::new(),
        }
    }
}

/// What kind of account to create. Unset fields take the simulator's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSpec {
    /// Email claim of the tokens; defaults to `userN@sim.example`.
    pub email: Option<String>,
    /// `chatgpt_plan_type` claim and the `plan_type` of 429 bodies; defaults to `plus`.
    pub plan: Option<String>,
    /// Tokens per primary window (overrides [`SimOptions::primary_quota_tokens`]).
    pub primary_quota_tokens: Option<u64>,
    /// Tokens per secondary window (overrides [`SimOptions::secondary_quota_tokens`]).
    pub secondary_quota_tokens: Option<u64>,
    /// Tokens per window of the extra `codex_bengalfox` limit (spark models).
    pub extra_quota_tokens: Option<u64>,
    /// Access-token lifetime before time scaling (overrides [`SimOptions::access_token_ttl`]).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Option<Duration>,
    /// Credits balance reported in `x-codex-credits-*`; `None` = no credits.
    pub credits_balance: Option<String>,
}

/// A freshly created account, ready to be imported into the daemon or a Codex CLI.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedAccount {
    /// The simulator's id of the account; it is also the `chatgpt_account_id` claim and the
    /// `chatgpt-account-id` header value.
    pub id: String,
    /// Email claim of its tokens.
    pub email: String,
    /// A Codex CLI `auth.json` (docs/protocol.md §8) holding its first tokens.
    pub auth_json: serde_json::Value,
}

impl std::fmt::Debug for CreatedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedAccount")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("auth_json", &"<redacted>")
            .finish()
    }
}

/// Which simulated endpoint a fault applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `POST /backend-api/codex/responses` — the default.
    #[default]
    Responses,
    /// `POST /oauth/token`.
    Token,
    /// `GET /backend-api/wham/usage`.
    Usage,
    /// `GET /backend-api/codex/models`.
    Models,
}

/// One way the upstream misbehaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 `rate_limit_exceeded` (not a usage limit), with a `Retry-After` header when set.
    RateLimit {
        /// Seconds to put in `Retry-After`; `None` sends no such header.
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// A plain 500 Internal Server Error.
    ServerError,
    /// 503 with `error.code = "server_is_overloaded"`.
    Overloaded,
    /// A Cloudflare challenge: 403 HTML page with `cf-mitigated: challenge`.
    Cloudflare,
    /// The stream stops after `after_events` SSE events without a terminal event. With
    /// `mid_chunk` the raw chunked body is cut inside the next chunk (clients see an
    /// "unexpected EOF" framing error); without, the body ends cleanly but early.
    PrematureClose {
        /// How many events are sent before the cut.
        #[serde(default)]
        after_events: usize,
        /// Cut inside a chunk instead of ending the body cleanly.
        #[serde(default)]
        mid_chunk: bool,
    },
    /// Nothing at all is sent for `millis` (slow reasoning), then the answer is normal.
    Silence {
        /// How long to stay silent before the response head.
        millis: u64,
    },
    /// After `after_events` events the stream pauses for `millis`, then continues normally
    /// (exercises idle timeouts).
    Stall {
        /// How many events are sent before the pause.
        #[serde(default)]
        after_events: usize,
        /// How long the pause lasts.
        millis: u64,
    },
    /// The TCP connection is reset (RST) instead of answering.
    Reset,
    /// The answer carries one extra `response.output_text.delta` of `bytes` bytes of text, just
    /// before its `response.output_text.done` (a model emitting a huge blob — base64, a
    /// generated file — in one delta); the rest of the answer is normal.
    HugeEvent {
        /// Size of the delta's text.
        bytes: usize,
    },
    /// Like [`FaultKind::HugeEvent`], and that delta's frame is sent in two parts: all but its
    /// last 64 bytes, then, after `millis` of silence, the rest (an event split across a
    /// pause, as a slow upstream or a congested link delivers it). With `bytes` above the
    /// daemon's hold-back ([`crate::sse::MAX_LINE`]) the client already has part of the event
    /// when the pause begins, so no heartbeat may go until its end.
    SplitEvent {
        /// Size of the delta's text.
        bytes: usize,
        /// The pause inside the event.
        millis: u64,
    },
    /// The answer carries an extra response header `name` whose value is `bytes` long (an edge
    /// or a bug upstream stuffing a header); the answer itself is normal.
    HugeHeader {
        /// Header name, e.g. `x-codex-promo-message`.
        name: String,
        /// Length of its value.
        bytes: usize,
    },
    /// The connection stays open for `millis` after the terminal event (the real backend's
    /// SSE connections sometimes do), then the body ends.
    Linger {
        /// How long the body stays open after `response.completed`.
        millis: u64,
    },
    /// After `after_events` events (default 2) the stream ends with `response.failed` of this
    /// `error.code` (`rate_limit_exceeded`, `usage_limit_reached`, `insufficient_quota`: the
    /// account's fault; `context_length_exceeded`, `cyber_policy`, `invalid_prompt`: the
    /// request's), body from `tests/fixtures/upstream/`.
    ResponseFailed {
        /// `response.error.code`.
        code: String,
        /// How many events of the normal answer come first.
        #[serde(default = "two")]
        after_events: usize,
    },
    /// After `after_events` events (default 2) the stream ends with an `error` event.
    ErrorEvent {
        /// How many events of the normal answer come first.
        #[serde(default = "two")]
        after_events: usize,
        /// The event's `code` (and message); `None` keeps the corpus's `server_error`. LB
        /// and ICE meet `error` events with the quota codes too.
        #[serde(default)]
        code: Option<String>,
    },
    /// 402: the account's quota or subscription is exhausted.
    PaymentRequired,
    /// 403 with a JSON body (not Cloudflare's page); on `/wham/usage` its own body.
    Forbidden,
    /// 404 with an empty body (Cloudflare's "stealth deny" of an account).
    NotFoundEmpty,
    /// 429 `usage_limit_reached` without reset fields: the reset is only in the headers, in
    /// the family `x-codex-active-limit` names.
    UsageLimitHeadersOnly,
    /// 429 `usage_limit_reached` whose reset is `resets_in_seconds` away (default 471284, a
    /// weekly window).
    UsageLimitWeekly {
        /// Seconds until the reset.
        #[serde(default = "weekly")]
        resets_in_seconds: u64,
    },
    /// 429 from an extra limit family: `x-codex-active-limit: codex_other` with its
    /// `x-codex-other-*` headers (reset `resets_in_seconds` away).
    OtherFamilyLimit {
        /// Seconds until the family's reset.
        #[serde(default = "weekly")]
        resets_in_seconds: u64,
    },
    /// 429 `usage_not_included`: the plan does not include the model.
    UsageNotIncluded,
    /// `/wham/usage` answers 200 with `"rate_limit": null` (its target must be `usage`).
    RateLimitNull,
    /// 400 `invalid_encrypted_content` whatever the body carries (the refusal of reasoning
    /// another account encrypted, for a test that needs it twice in a row).
    InvalidEncryptedContent,
}

/// The mid-stream `response.failed` of [`FaultKind::ResponseFailed`] by default: after
/// `response.created` and `response.in_progress`.
fn two() -> usize {
    2
}

/// The weekly reset of [`FaultKind::UsageLimitWeekly`] by default, as ICE's test has it.
fn weekly() -> u64 {
    471_284
}

/// A scripted fault: what happens, to whom, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What goes wrong.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests of this simulator account; `None` = every account (and anonymous calls).
    #[serde(default)]
    pub account: Option<String>,
    /// Which endpoint misbehaves.
    #[serde(default)]
    pub target: FaultTarget,
    /// Chance (0..=1, seeded) that a matching request is hit; `None` = every matching request.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Hit at most this many requests, then the fault is spent; `None` = unlimited.
    #[serde(default)]
    pub count: Option<u32>,
}

impl FaultSpec {
    /// A fault on every responses request of every account, until cleared.
    pub fn always(kind: FaultKind) -> Self {
        FaultSpec {
            kind,
            account: None,
            target: FaultTarget::Responses,
            probability: None,
            count: None,
        }
    }

    /// Restricts the fault to one simulator account.
    pub fn for_account(mut self, id: impl Into<String>) -> Self {
        self.account = Some(id.into());
        self
    }

    /// Limits the fault to `n` hits.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Makes the fault hit with probability `p` (seeded).
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Moves the fault to another endpoint.
    pub fn on(mut self, target: FaultTarget) -> Self {
        self.target = target;
        self
    }
}

/// What the simulator did for one account (or in total), for assertions and the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Requests to the responses endpoint that carried this account's token.
    pub requests: u64,
    /// Successful answers (streams that reached `response.completed`, or JSON answers).
    pub completed: u64,
    /// Tokens charged to the quotas (input + output).
    pub tokens: u64,
    /// Input tokens of served answers.
    pub input_tokens: u64,
    /// Cached input tokens of served answers.
    pub cached_tokens: u64,
    /// Output tokens (reasoning included) of served answers.
    pub output_tokens: u64,
    /// Reasoning tokens of served answers.
    pub reasoning_tokens: u64,
    /// 429 answers (usage limit or injected rate limit).
    pub served_429: u64,
    /// 401 answers (expired, unknown or deactivated).
    pub served_401: u64,
    /// 403 answers (banned, Cloudflare challenge).
    pub served_403: u64,
    /// 5xx answers.
    pub served_5xx: u64,
    /// Injected faults that hit.
    pub faults: u64,
    /// Successful refresh-token exchanges.
    pub refreshes: u64,
    /// Refresh attempts with an already used refresh token.
    pub refresh_reused: u64,
    /// `GET /backend-api/wham/usage` calls.
    pub usage_probes: u64,
    /// `GET /backend-api/codex/models` calls.
    pub model_fetches: u64,
}
