"""What the simulated model sends on an API's bad day: the hostile replies canary must survive.

The simulator (sim.py) builds its normal answer, then, for the cases a fault is aimed at,
hands it here to be spoiled. The `fault` knob picks one of `FAULTS`; `fault_rate` is the
share of each suite's cases that get it (ranked by a hash, like error_rate), the others are
answered as usual.

- runaway: 200, a reply that loops for `runaway_chars` characters ('ANSWER: 4' then '. '
  over and over: the reply that made the old answer regex backtrack for minutes), cut by
  the token limit.
- truncated_json: 200, the message's JSON cut in the middle.
- not_json: 200, an HTML error page a proxy put where the message should be.
- wrong_shape: 200, valid JSON that is not a message.
- empty: 200, a message with no content at all and 0 output tokens.
- echo_key: 401, an error message that echoes the API key the request carried.
- hostile_fields: 200, a wrong answer whose text holds a NUL, a lone surrogate, Slack
  control sequences and HTML, with a 300-character model id and stop reason.
- refusal, thinking_only: 200, a message that is only a refusal (no text on Anthropic,
  OpenAI's `refusal` field) or only thinking: real answers, which canary scores.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Mapping

FAULTS = ("runaway", "truncated_json", "not_json", "wrong_shape", "empty", "echo_key", "hostile_fields",
          "refusal", "thinking_only")
REFUSAL = "I can't help with that."
THOUGHT = "The user wants an answer. I should think about it before writing one."
HOSTILE_TEXT = ("<!channel> <@U024BE7LH> look: <https://evil.example|click here> & <b>bold</b> \x00 "
                "\ud800 then nothing useful")
PROXY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

Response = tuple[int, dict[str, str], Any]  # (status, headers, JSON body or raw bytes)


def runaway_text(chars: int) -> str:
    """A looping reply of exactly `chars` characters."""
    return ("ANSWER: 4" + ". " * (chars // 2 + 1))[: max(chars - 1, 0)] + "x"


def spoil(fault: str, wire: str, response: Response, request_headers: Mapping[str, str], *,
          runaway_chars: int) -> Response:
    """The normal 200 answer `response`, spoiled by `fault`."""
    status, headers, body = response
    if fault == "echo_key":
        return _echo_key(wire, headers, request_headers)
    if fault == "truncated_json":
        data = json.dumps(body).encode()
        return status, headers, data[: len(data) // 2]
    if fault == "not_json":
        return status, {**headers, "content-type": "text/html"}, PROXY_PAGE.encode()
    if fault == "wrong_shape":
        return status, headers, {"ok": True, "result": {"status": "queued"}}
    body = copy.deepcopy(body)
    if fault == "runaway":
        _set(wire, body, text=runaway_text(runaway_chars), stop="length", output_tokens=runaway_chars // 4)
    elif fault == "empty":
        _set(wire, body, text="", stop="stop", output_tokens=0)
    elif fault == "hostile_fields":
        _set(wire, body, text=HOSTILE_TEXT, stop="stop_" + "x" * 295, output_tokens=20)
        body["model"] = "model-" + "m" * 294
    elif fault == "refusal":
        _set(wire, body, text="", stop="refusal", output_tokens=7)
        if wire == "openai":
            body["choices"][0]["message"].update(content=None, refusal=REFUSAL)
            body["choices"][0]["finish_reason"] = "stop"
    elif fault == "thinking_only":
        _set(wire, body, text="", stop="stop", output_tokens=16)
        if wire == "anthropic":
            body["content"] = [{"type": "thinking", "thinking": THOUGHT, "signature": "sig"}]
        else:
            body["choices"][0]["message"]["reasoning_content"] = THOUGHT
    else:
        raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
    return status, headers, body


def _set(wire: str, body: dict, *, text: str, stop: str, output_tokens: int) -> None:
    """Replace the answer's content (no tool calls, no thinking), stop reason and output tokens."""
    if wire == "anthropic":
        body["content"] = [{"type": "text", "text": text}] if text else []
        body["stop_reason"] = {"length": "max_tokens", "stop": "end_turn"}.get(stop, stop)
        body["usage"]["output_tokens"] = output_tokens
    else:
        choice = body["choices"][0]
        choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        choice["finish_reason"] = stop
        body["usage"]["completion_tokens"] = output_tokens


def _echo_key(wire: str, headers: dict, request_headers: Mapping[str, str]) -> Response:
    auth = request_headers.get("authorization") or ""
    key = request_headers.get("x-api-key") or auth.removeprefix("Bearer ").strip()
    headers = {k: v for k, v in headers.items() if k.endswith("request-id")}
    if wire == "anthropic":
        return 401, headers, {"type": "error", "error": {"type": "authentication_error",
                                                         "message": f"invalid x-api-key: {key}"}}
    return 401, headers, {"error": {"message": f"Incorrect API key provided: {key}. You can find your API key "
                                                "at https://platform.openai.com/account/api-keys.",
                                    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
