//! What a `POST /codex/responses` body asks for, and the deterministic answer the simulator
//! gives to it. Pure: bytes and a seed in, a [`Plan`] out.
//!
//! Answer rules (documented for test authors and in the README): when the last user text
//! contains `use the tool NAME` and the request offers a tool NAME, the answer is a
//! `function_call` to NAME whose arguments validate against the tool's `parameters` schema
//! ([`arguments`]: every required property, the first string taking the text after
//! `with` / `on` / `for` on that line, as in `use the tool exec_command with echo hi`); when the
//! last input item is a `function_call_output`, the answer quotes its output; otherwise the
//! answer is `answer_words` pseudo-random words chosen from the seed and the last user text.
//! Every text answer starts with [`SIMULATED`], so nobody mistakes it for a real model's.
//! Token counts: input = ceil(body bytes / 4); output = ceil(answer bytes / 4) + 1.

mod arguments;

use serde_json::Value;

/// How every text answer of the simulated model begins.
pub(crate) const SIMULATED: &str = "Simulated answer: ";

/// The parts of a Responses request the simulator looks at.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    /// Requested model.
    pub model: String,
    /// `stream: true` → SSE; otherwise one JSON response object.
    pub stream: bool,
    /// A `reasoning` object was sent: answer with a reasoning item and summary deltas.
    pub reasoning: bool,
    /// `include` asks for `reasoning.encrypted_content`.
    pub encrypted_reasoning: bool,
    /// The tools offered.
    pub tools: Vec<Tool>,
    /// Text of the last user message.
    pub last_user_text: String,
    /// Output of the last input item when it is a `function_call_output`.
    pub tool_output: Option<String>,
    /// Input size in tokens (from the body size).
    pub input_tokens: u64,
    /// `prompt_cache_key`, used to report cached tokens on follow-up requests.
    pub prompt_cache_key: Option<String>,
}

/// One tool the request offers.
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    /// Its name (`exec_command`, `Read`), or its type for built-in tools (`web_search`).
    pub name: String,
    /// The JSON schema of its arguments, for function tools.
    pub parameters: Option<Value>,
}

/// Why a request body was refused (400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnError {
    /// The offending parameter, if one.
    pub param: Option<&'static str>,
    /// Human-readable reason.
    pub message: String,
}

/// What the answer will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// An assistant message with this text.
    Text(String),
    /// A function call.
    ToolCall {
        /// The tool called.
        name: String,
        /// Its arguments, as the JSON text the Responses API carries.
        arguments: String,
    },
}

/// The whole deterministic answer to one turn.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Message or tool call.
    pub reply: Reply,
    /// Reasoning summary text, when reasoning was asked for.
    pub summary: Option<String>,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Reasoning share of the output tokens.
    pub reasoning_tokens: u64,
}

const WORDS: &[&str] = &[
    "the",
    "pool",
    "answers",
    "quickly",
    "with",
    "simulated",
    "tokens",
    "and",
    "every",
    "account",
    "keeps",
    "its",
    "quota",
    "window",
    "while",
    "streams",
    "arrive",
    "in",
    "order",
    "rotor",
    "codex",
    "plans",
    "carefully",
    "reads",
    "files",
    "tests",
    "pass",
    "today",
    "again",
    "done",
];

/// Parses a Responses request body.
#[cfg(test)]
pub(crate) fn parse(body: &[u8]) -> Result<Turn, TurnError> {
    read(&json(body)?, body.len())
}

/// The body as JSON.
pub(crate) fn json(body: &[u8]) -> Result<Value, TurnError> {
    serde_json::from_slice(body).map_err(|e| TurnError {
        param: None,
        message: format!("We could not parse the JSON body of your request. ({e})"),
    })
}

/// Reads a parsed Responses request body of `len` bytes.
pub(crate) fn read(v: &Value, len: usize) -> Result<Turn, TurnError> {
    let obj = v.as_object().ok_or_else(|| TurnError {
        param: None,
        message: "The request body must be a JSON object.".into(),
    })?;
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(TurnError {
                param: Some("model"),
                message: "Missing required parameter: 'model'.".into(),
            });
        }
    };
    let input = obj.get("input").cloned().unwrap_or(Value::Null);
    if !matches!(input, Value::String(_) | Value::Array(_)) {
        return Err(TurnError {
            param: Some("input"),
            message: "Missing required parameter: 'input' (a string or an array of items).".into(),
        });
    }
    let tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(tool).collect())
        .unwrap_or_default();
    let include = obj.get("include").and_then(Value::as_array);
    Ok(Turn {
        model,
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        reasoning: obj.get("reasoning").is_some_and(|r| !r.is_null()),
        encrypted_reasoning: include.is_some_and(|i| {
            i.iter()
                .any(|x| x.as_str() == Some("reasoning.encrypted_content"))
        }),
        tools,
        last_user_text: last_user_text(&input),
        tool_output: last_tool_output(&input),
        input_tokens: (len as u64).div_ceil(4),
        prompt_cache_key: obj
            .get("prompt_cache_key")
            .and_then(Value::as_str)
            .map(String::from),
    })
}

fn tool(t: &Value) -> Option<Tool> {
    let name = t
        .get("name")
        .or_else(|| t.get("function").and_then(|f| f.get("name")))
        .or_else(|| t.get("type"))
        .and_then(Value::as_str)?;
    let parameters = t
        .get("parameters")
        .or_else(|| t.get("function").and_then(|f| f.get("parameters")))
        .cloned();
    Some(Tool {
        name: name.to_owned(),
        parameters,
    })
}

/// Text of a content value: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn last_user_text(input: &Value) -> String {
    match input {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|i| i.get("content"))
            .map(content_text)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn last_tool_output(input: &Value) -> Option<String> {
    let last = input.as_array()?.last()?;
    if last.get("type").and_then(Value::as_str) != Some("function_call_output") {
        return None;
    }
    Some(last.get("output").map(content_text).unwrap_or_default())
}

/// The tool NAME of a `use the tool NAME [with|on|for TEXT]` request, and TEXT (the rest of
/// that line, without surrounding quotes), if the text has one.
fn requested_tool(text: &str) -> Option<(String, Option<String>)> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("use the tool ")? + "use the tool ".len();
    let name: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect();
    let name = name.trim_end_matches('.').to_string();
    if name.is_empty() {
        return None;
    }
    let line = text[at + name.len()..].lines().next().unwrap_or("");
    let line = line.trim_start();
    let arg = ["with ", "on ", "for "].iter().find_map(|word| {
        let head = line.get(..word.len())?;
        head.eq_ignore_ascii_case(word).then(|| {
            line[word.len()..]
                .trim()
                .trim_matches(['"', '\'', '`'])
                .trim()
        })
    });
    let arg = arg.filter(|a| !a.is_empty()).map(String::from);
    Some((name, arg))
}

/// The answer to `use the tool NAME`: a call with schema-valid arguments when NAME is offered
/// (matched exactly, else ignoring case), else a text saying which tools are.
fn tool_reply(tools: &[Tool], name: &str, arg: Option<&str>) -> Reply {
    let offered = tools
        .iter()
        .find(|t| t.name == name)
        .or_else(|| tools.iter().find(|t| t.name.eq_ignore_ascii_case(name)));
    match offered {
        Some(t) => Reply::ToolCall {
            name: t.name.clone(),
            arguments: arguments::build(t.parameters.as_ref(), arg).to_string(),
        },
        None => {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
            Reply::Text(format!(
                "{SIMULATED}there is no tool named {name} here; the tools offered are: {}.",
                names.join(", ")
            ))
        }
    }
}

/// FNV-1a, to turn the seed and the user text into a reproducible word choice.
fn fnv(seed: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn words(mut h: u64, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n.max(1) {
        h = h
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let w = WORDS[(h >> 33) as usize % WORDS.len()];
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out.push('.');
    out
}

/// Decides the answer to a turn.
pub(crate) fn plan(turn: &Turn, seed: u64, answer_words: usize) -> Plan {
    let h = fnv(seed, &turn.last_user_text);
    let reply = match (&turn.tool_output, requested_tool(&turn.last_user_text)) {
        (Some(out), _) => Reply::Text(format!("{SIMULATED}the tool returned: \"{out}\"")),
        (None, Some((name, arg))) if !turn.tools.is_empty() => {
            tool_reply(&turn.tools, &name, arg.as_deref())
        }
        _ => Reply::Text(format!("{SIMULATED}{}", words(h, answer_words))),
    };
    let summary = turn
        .reasoning
        .then(|| format!("**Thinking** {}", words(h ^ 0x5555, 6)));
    let reasoning_tokens = summary
        .as_ref()
        .map_or(0, |s| 16 + (s.len() as u64).div_ceil(4));
    let visible = match &reply {
        Reply::Text(t) => t.len() as u64,
        Reply::ToolCall { name, arguments } => (name.len() + arguments.len()) as u64,
    };
    Plan {
        reply,
        summary,
        output_tokens: visible.div_ceil(4) + 1 + reasoning_tokens,
        reasoning_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(body: Value) -> Turn {
        parse(body.to_string().as_bytes()).expect("valid")
    }

    #[test]
    fn tool_request_becomes_a_function_call_only_when_tools_exist() {
        let with = turn(
            json!({"model":"m","input":"please use the tool exec_command now","tools":[{"type":"function","name":"exec_command"}]}),
        );
        assert_eq!(
            plan(&with, 1, 5).reply,
            Reply::ToolCall {
                name: "exec_command".into(),
                arguments: "{}".into()
            }
        );
        let without = turn(json!({"model":"m","input":"please use the tool exec_command now"}));
        assert!(matches!(plan(&without, 1, 5).reply, Reply::Text(_)));
    }

    #[test]
    fn function_call_output_is_quoted() {
        let t = turn(json!({"model":"m","input":[
            {"type":"message","role":"user","content":[{"type":"input_text","text":"run echo"}]},
            {"type":"function_call","name":"exec_command","arguments":"{}","call_id":"c1"},
            {"type":"function_call_output","call_id":"c1","output":"tool-ran"}]}));
        assert_eq!(
            plan(&t, 1, 5).reply,
            Reply::Text("Simulated answer: the tool returned: \"tool-ran\"".into())
        );
    }

    #[test]
    fn answers_are_deterministic_per_seed_and_text() {
        let t = turn(
            json!({"model":"m","input":[{"role":"user","content":"hi"}],"reasoning":{"effort":"low"}}),
        );
        let a = plan(&t, 7, 6);
        assert_eq!(a.reply, plan(&t, 7, 6).reply);
        assert_ne!(a.reply, plan(&t, 8, 6).reply);
        assert!(a.summary.is_some() && a.reasoning_tokens > 0);
        assert!(a.output_tokens > a.reasoning_tokens);
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let e = parse(br#"{"input":"hi"}"#).expect_err("no model");
        assert_eq!(e.param, Some("model"));
        assert!(parse(b"not json").is_err());
    }
}
