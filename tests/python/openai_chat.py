"""Drives codex-rotor's /v1/chat/completions with the real `openai` Python SDK.

Run by tests/it/translate/sdk.rs (interpreter from $ROTOR_PYTHON, default python3) against a
daemon in front of the simulator. Usage: openai_chat.py BASE_URL API_KEY MODEL
Prints one JSON object with what each SDK call returned; exits non-zero on any unexpected
exception, so the Rust test sees the SDK's own error.
"""

import json
import sys

import openai

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    out = {}

    # 1. Plain: the daemon collects the upstream stream into one chat.completion.
    r = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    )
    out["plain"] = {
        "object": r.object,
        "model": r.model,
        "content": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "total_tokens": r.usage.total_tokens if r.usage else None,
    }

    # 2. Streamed, with usage and reasoning (the -high suffix asks for reasoning).
    roles, text, reasoning, finish, usage, chunks = [], [], [], [], None, 0
    stream = client.chat.completions.create(
        model=model + "-high",
        messages=[{"role": "user", "content": "Count to three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.total_tokens
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                text.append(c.delta.content)
            extra = c.delta.model_extra or {}
            if extra.get("reasoning_content"):
                reasoning.append(extra["reasoning_content"])
            if c.finish_reason:
                finish.append(c.finish_reason)
    out["streamed"] = {
        "roles": roles,
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "finish": finish,
        "usage_total": usage,
        "chunks": chunks,
    }

    # 3. Tool round trip: the simulator calls NAME when asked to "use the tool NAME".
    messages = [{"role": "user", "content": "Please use the tool get_weather for Paris"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    out["tool"] = {
        "finish_reason": first.choices[0].finish_reason,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "id": call.id,
        "answer": second.choices[0].message.content,
        "answer_finish": second.choices[0].finish_reason,
    }

    # 4. The same tool call, streamed: tool_calls deltas assembled by index.
    calls = {}
    finish = None
    for chunk in client.chat.completions.create(model=model, messages=messages[:1], tools=[WEATHER], stream=True):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    entry["id"] = tc.id
                if tc.function and tc.function.name:
                    entry["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
            if c.finish_reason:
                finish = c.finish_reason
    out["tool_streamed"] = {"calls": list(calls.values()), "finish": finish}

    # 5. Bad input is a 400 in OpenAI's shape, naming the field.
    try:
        client.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "x"}])
        out["bad_role"] = "accepted"
    except openai.BadRequestError as e:
        out["bad_role"] = {"status": e.status_code, "param": (e.body or {}).get("param"), "type": (e.body or {}).get("type")}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
