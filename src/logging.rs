//! Logging: `tracing` to stderr, human-readable or JSON lines, filtered by env-filter
//! directives. Every byte written passes through [`redact`], a last line of defence that masks
//! bearer tokens, JWTs, `*_token` JSON/form fields and every secret registered with
//! [`register_secret`] (client and admin keys), so a token that slips into a message or an
//! upstream error body still never reaches the log. The first line of defence is
//! [`crate::config::Secret`], which never prints its value.
//!
//! The daemon's lines reach stderr through [`queue`]: a bounded queue and a writer thread of
//! their own, so a closed or stuck stderr drops (and counts) lines instead of panicking or
//! blocking the task that logged.

pub mod queue;

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured-free, aligned text for terminals and journald.
    #[default]
    Human,
    /// One JSON object per line (with span fields such as request and account id).
    Json,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter directives do not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    Filter {
        /// The directives given.
        filter: String,
        /// The parser's complaint.
        message: String,
    },
    /// A global subscriber is already installed.
    #[error("logging already initialised")]
    AlreadySet,
    /// The log writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Writer(std::io::Error),
}

/// Installs the global subscriber writing redacted lines to stderr through the [`queue`]
/// (which redacts each line on its writer thread).
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let filter = env_filter(filter)?;
    let writer = queue::start().map_err(LoggingError::Writer)?;
    let subscriber = build(format, filter, writer);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LoggingError::AlreadySet)
}

/// The subscriber `init` installs, writing redacted lines to any `MakeWriter` (tests capture
/// logs with it through `tracing::subscriber::with_default`).
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, LoggingError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Ok(build(format, env_filter(filter)?, Redacting(writer)))
}

fn env_filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(filter).map_err(|e| LoggingError::Filter {
        filter: filter.to_owned(),
        message: e.to_string(),
    })
}

/// The fmt subscriber on a writer that already redacts. Its internal error report is off: it
/// is an `eprintln!`, which panics when stderr is closed (the writers here never fail anyway).
fn build<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// A `MakeWriter` that redacts every write before passing it on. Wrap any writer with it
/// (tests wrap a buffer to check what would have been logged).
#[derive(Debug, Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

/// The writer made by [`Redacting`]. The fmt layer writes each event with one `write_all`,
/// so each write is a whole line and patterns are never split.
#[derive(Debug)]
pub struct RedactingWriter<W>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Adds a secret to scrub from every log line (keys at startup and reload). Values shorter
/// than 8 characters are ignored: masking them would mangle ordinary words.
pub fn register_secret(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut list = match registry().lock() {
        Ok(l) => l,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_owned());
    }
}

/// What replaces every masked value.
pub const MASK: &str = "***";

/// Masks secrets in `text`: registered secrets, `Bearer <token>`, JWT-shaped strings
/// (`eyJ….….…`), and the values of `access_token` / `refresh_token` / `id_token` / `api_key`
/// fields in JSON (`"refresh_token":"…"`) and forms (`refresh_token=…`), and every value a
/// serde error quotes from its input.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    {
        let list = match registry().lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
    }
    out = mask_after(&out, "Bearer ", is_token_char);
    out = mask_after(&out, "bearer ", is_token_char);
    for field in SECRET_FIELDS {
        out = mask_field(&out, field);
    }
    mask_jwts(&mask_serde_quotes(&out))
}

/// Masks what serde quotes from the input (`invalid type: string "…"`, `invalid value:
/// string "…"`): in an account file that is as likely a token as anything else.
fn mask_serde_quotes(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(pos) = rest.find("string \"") {
        let (head, tail) = rest.split_at(pos + "string \"".len());
        out.push_str(head);
        // The value is quoted Debug-style: `\"` inside it does not end it.
        let mut escaped = false;
        let end = tail
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map_or(tail.len(), |(i, _)| i);
        out.push_str(MASK);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Field names whose values are always secrets, in JSON, escaped JSON or form encoding.
const SECRET_FIELDS: [&str; 6] = [
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "client_secret",
    "code_verifier",
];

/// Masks the value after `field` when a separator follows it: `"field":"v"`, `\"field\":\"v\"`
/// (JSON inside a JSON log line), `field=v` (forms). "access_token expired" stays as is.
fn mask_field(text: &str, field: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(field) {
        let (head, tail) = rest.split_at(pos + field.len());
        out.push_str(head);
        let sep_len = separator_len(tail);
        if sep_len == 0 {
            rest = tail;
            continue;
        }
        out.push_str(&tail[..sep_len]);
        let value = &tail[sep_len..];
        let end = value
            .find(|c: char| "\"\\&,;}".contains(c) || c.is_whitespace())
            .unwrap_or(value.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Length of `\"?` `"?` spaces `:`/`=` spaces `\"?` `"?` at the start of `s`; 0 without `:`/`=`.
fn separator_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < b.len() && set.contains(&b[*i]) {
            *i += 1;
        }
    };
    skip(&mut i, b"\\\"");
    skip(&mut i, b" ");
    if i >= b.len() || !(b[i] == b':' || b[i] == b'=') {
        return 0;
    }
    i += 1;
    skip(&mut i, b" ");
    skip(&mut i, b"\\\"");
    i
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=".contains(c)
}

/// Replaces the run of `keep(c)` characters after each `marker` with [`MASK`].
fn mask_after(text: &str, marker: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(marker) {
        let (head, tail) = rest.split_at(pos + marker.len());
        out.push_str(head);
        let end = tail.find(|c: char| !keep(c)).unwrap_or(tail.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Masks `eyJ…` runs of base64url characters that contain two dots (a JWT).
fn mask_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("eyJ") {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        if candidate.matches('.').count() >= 2 && candidate.len() >= 20 {
            out.push_str(MASK);
        } else {
            out.push_str(candidate);
        }
        rest = &tail[end..];
        if end == 0 {
            // cannot happen ("eyJ" is alphanumeric) but never loop forever
            break;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_serde_quotes_from_its_input_is_masked() {
        // A wrongly typed field of an account file: the value serde quotes may be a token.
        let reason = r#"invalid JSON: invalid type: string "rt_a\"b_secret", expected struct Tokens at line 1 column 9"#;
        assert_eq!(
            redact(reason),
            r#"invalid JSON: invalid type: string "***", expected struct Tokens at line 1 column 9"#
        );
        let plain = "record id \"x\" does not match its file name";
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn masks_tokens_in_every_shape() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let line = format!(
            "auth Bearer sk-abc.def and {{\"refresh_token\":\"rt_123\",\"x\":1}} \
             refresh_token=rt_456&grant=x jwt={jwt} ok"
        );
        let r = redact(&line);
        assert_eq!(redact("access_token expired"), "access_token expired");
        assert_eq!(
            redact(r#"{\"refresh_token\":\"rt_9\"}"#),
            r#"{\"refresh_token\":\"***\"}"#
        );
        assert_eq!(redact("refresh_token: rt_9, ok"), "refresh_token: ***, ok");
        assert!(!r.contains("sk-abc"), "{r}");
        assert!(!r.contains("rt_123"), "{r}");
        assert!(!r.contains("rt_456"), "{r}");
        assert!(!r.contains("c2lnbmF0dXJl"), "{r}");
        assert!(r.contains("Bearer ***"), "{r}");
        assert!(r.contains("\"x\":1"), "{r}");
        assert!(r.ends_with(" ok"), "{r}");
    }

    /// A shared buffer standing in for stderr.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn log_lines_never_carry_tokens_in_either_format() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXNlY3JldA";
        register_secret("client-key-registered-42");
        for format in [LogFormat::Human, LogFormat::Json] {
            let buf = Buffer::default();
            let sub = subscriber(format, "debug", buf.clone()).unwrap();
            tracing::subscriber::with_default(sub, || {
                let key = crate::config::Secret::from("secret-in-a-wrapper");
                let span = tracing::info_span!("request", request_id = "r-1", account_id = "acc-1");
                let _g = span.enter();
                tracing::info!(?key, "authenticated");
                tracing::warn!(body = %format!("{{\"refresh_token\":\"rt_abc\",\"id_token\":\"{jwt}\"}}"), "upstream said");
                tracing::debug!(
                    "sending Authorization: Bearer {jwt} with client-key-registered-42"
                );
            });
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            for leaked in [
                "secret-in-a-wrapper",
                "rt_abc",
                "c2lnbmF0dXJl",
                "client-key-registered-42",
            ] {
                assert!(!out.contains(leaked), "{format:?} leaked {leaked}: {out}");
            }
            assert!(
                out.contains("authenticated") && out.contains("r-1") && out.contains("acc-1"),
                "{out}"
            );
            assert_eq!(out.lines().count(), 3, "{out}");
        }
    }

    #[test]
    fn a_bad_filter_is_an_error() {
        assert!(matches!(
            subscriber(LogFormat::Human, "info,=[", std::io::sink),
            Err(LoggingError::Filter { .. })
        ));
    }

    #[test]
    fn masks_registered_secrets_and_leaves_plain_text() {
        register_secret("pool-key-0123456789");
        register_secret("short");
        assert_eq!(redact("key pool-key-0123456789!"), "key ***!");
        assert_eq!(redact("a short eyJ word"), "a short eyJ word");
    }
}
