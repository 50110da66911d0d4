"""Drives codex-rotor's /v1/messages with the real `anthropic` Python SDK.

Run by tests/it/translate/sdk.rs (interpreter from $ROTOR_PYTHON, default python3) against a
daemon in front of the simulator. Usage: anthropic_messages.py BASE_URL API_KEY MODEL
Prints one JSON object with what each SDK call returned; exits non-zero on any unexpected
exception, so the Rust test sees the SDK's own error.
"""

import json
import sys

import anthropic

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def blocks(message):
    return [b.type for b in message.content]


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    out = {}

    # 1. Plain.
    m = client.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    out["plain"] = {
        "type": m.type,
        "role": m.role,
        "model": m.model,
        "blocks": blocks(m),
        "text": m.content[0].text if m.content and m.content[0].type == "text" else None,
        "stop_reason": m.stop_reason,
        "output_tokens": m.usage.output_tokens,
    }

    # 2. messages.stream() + get_final_message(), with thinking.
    with client.messages.stream(
        model=model,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        system="Be brief.",
        messages=[{"role": "user", "content": "Count to three"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    out["streamed"] = {
        "text": text,
        "final_blocks": blocks(final),
        "final_text": "".join(b.text for b in final.content if b.type == "text"),
        "thinking": "".join(b.thinking for b in final.content if b.type == "thinking"),
        "stop_reason": final.stop_reason,
        "output_tokens": final.usage.output_tokens,
    }

    # 3. tool_use -> tool_result round trip.
    messages = [{"role": "user", "content": "Please use the tool get_weather for Paris"}]
    first = client.messages.create(model=model, max_tokens=256, tools=[WEATHER], messages=messages)
    use = next(b for b in first.content if b.type == "tool_use")
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]}
    )
    second = client.messages.create(model=model, max_tokens=256, tools=[WEATHER], messages=messages)
    out["tool"] = {
        "stop_reason": first.stop_reason,
        "name": use.name,
        "input": use.input,
        "answer": "".join(b.text for b in second.content if b.type == "text"),
        "answer_stop": second.stop_reason,
    }

    # 4. The tool call streamed, assembled by the SDK's stream helper.
    with client.messages.stream(model=model, max_tokens=256, tools=[WEATHER], messages=messages[:1]) as stream:
        final = stream.get_final_message()
    tool = next((b for b in final.content if b.type == "tool_use"), None)
    out["tool_streamed"] = {
        "stop_reason": final.stop_reason,
        "name": tool.name if tool else None,
        "input": tool.input if tool else None,
    }

    # 5. count_tokens.
    counted = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hello there"}])
    out["count_tokens"] = counted.input_tokens

    # 6. Bad input is a 400 invalid_request_error; a bad key a 401 authentication_error.
    try:
        client.messages.create(model=model, max_tokens=8, messages=[{"role": "robot", "content": "x"}])
        out["bad_role"] = "accepted"
    except anthropic.BadRequestError as e:
        out["bad_role"] = {"status": e.status_code, "type": e.body["error"]["type"], "message": e.body["error"]["message"]}
    bad = anthropic.Anthropic(base_url=base_url, api_key="wrong-key", max_retries=0, timeout=30)
    try:
        bad.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "x"}])
        out["bad_key"] = "accepted"
    except anthropic.AuthenticationError as e:
        out["bad_key"] = {"status": e.status_code, "type": e.body["error"]["type"]}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
