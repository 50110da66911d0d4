"""Drives codex-rotor's /v1/responses with the real `openai` Python SDK.

Run by tests/it/proxy.rs (interpreter from $ROTOR_PYTHON, default python3) against a daemon
in front of the simulator. Usage: openai_responses.py BASE_URL API_KEY MODEL
Prints one JSON object with what each SDK entry point returned; exits non-zero on any
exception, so the Rust test sees the SDK's own error.
"""

import json
import sys

import openai


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    out = {}

    # 1. Plain (stream: false): the daemon collects the upstream stream into one object.
    resp = client.responses.create(model=model, input="Say hello in one word.")
    out["plain"] = {"id": resp.id, "status": resp.status, "output_text": resp.output_text}

    # 2. Streamed: raw events as the SDK parses them.
    types = []
    text = []
    completed_text = None
    with client.responses.create(model=model, input="Count to three.", stream=True) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                text.append(event.delta)
            if event.type == "response.completed":
                completed_text = event.response.output_text
    out["streamed"] = {"types": types, "delta_text": "".join(text), "completed_text": completed_text}

    # 3. The `responses.stream()` helper: needs response.created first and a full
    #    response.completed (its final output_text comes from it).
    with client.responses.stream(model=model, input="One more time.") as stream:
        helper_types = [event.type for event in stream]
        final = stream.get_final_response()
    out["helper"] = {"types": helper_types, "output_text": final.output_text, "status": final.status}

    # 4. A bad key is an authentication error in the SDK's own terms.
    bad = openai.OpenAI(base_url=base_url, api_key="wrong-key", max_retries=0, timeout=30)
    try:
        bad.responses.create(model=model, input="x")
        out["bad_key"] = "accepted"
    except openai.AuthenticationError as e:
        out["bad_key"] = {"status": e.status_code}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
