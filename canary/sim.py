"""The simulated model: a real HTTP server on 127.0.0.1 that answers suite cases.

It speaks the Anthropic Messages (`POST /v1/messages`) and OpenAI Chat Completions
(`POST /v1/chat/completions`) wire formats, so the demo, the README's first run and the
tests exercise the official SDKs' own code paths: retries, error classes, request ids.

A request is matched to a case by (system prompt, first user text); the turn is the count
of user text messages, the tool round the count of assistant tool-call messages since the
last one. The answer comes from the turn's `reference`: its tool calls round by round,
then its text. Knobs, set at construction or while it runs (`configure`):
- wrong_rate: share of samples answered wrong. One draw from `random.Random(seed)` per
  first response of a conversation; the wrong answer is one that really fails the case's
  asserts (see sim_wrong.py: shifted digits, swapped key words, wrong tool arguments...).
- error_rate + error_status: share of each suite's cases (ranked by a hash of seed and
  prompt) whose every request fails with that status; flaky_rate: share of first attempts
  failing once with 529 (the SDK's retry recovers). Errors carry `retry-after-ms`.
- latency (seconds per answer), reported_model (default: echo), thinking (Anthropic
  thinking block), and `requests`: the last 1000 (path, JSON body) received.
- models: `sim_models.Behaviour`s, picked by what a request sends (its model id, its
  params), for several models that answer differently behind one endpoint.
A request for one output token of a prompt that is no suite case is a fingerprint probe:
sim_fingerprint.py answers it (knobs model_version, swap_split_shift, swap_token_change).
- fault + fault_rate (+ runaway_chars): the hostile replies of sim_faults.py (runaway text,
  truncated JSON, an empty message, a 401 echoing the key...) for that share of the cases.
Like the API version the anthropic 2.x SDK sends, /v1/messages refuses `temperature`,
`top_p` and `top_k` (400), so a test catches canary sending them.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from . import sim_fingerprint
from .sim_models import Behaviour, pick
from .sim_faults import FAULTS, spoil
from .sim_wrong import Answer, Call, wrong_answer
from .suites import Case, Suite

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
GENERIC = ("I'm sorry, I don't have a reliable answer to that. Could you rephrase the question "
           "or give me a little more detail?")
REFUSED_PARAMS = ("temperature", "top_p", "top_k")  # the API version anthropic 2.x sends refuses them
# status -> (anthropic error type, openai error type, openai code, message)
_ERRORS = {400: ("invalid_request_error", "invalid_request_error", None, "Invalid request"),
           401: ("authentication_error", "invalid_request_error", "invalid_api_key", "Missing API key"),
           404: ("not_found_error", "invalid_request_error", "not_found", "Not found"),
           429: ("rate_limit_error", "requests", "rate_limit_exceeded", "Rate limit exceeded"),
           500: ("api_error", "server_error", None, "Internal server error"),
           529: ("overloaded_error", "server_error", "overloaded", "Overloaded")}
_KNOBS = {"wrong_rate": (0, 1), "error_rate": (0, 1), "flaky_rate": (0, 1), "error_status": (400, 599),
          "retry_after_ms": (0, math.inf), "latency": (0, math.inf), "reported_model": None, "thinking": None,
          "models": None, **sim_fingerprint.KNOBS,
          "fault": frozenset((None,) + FAULTS), "fault_rate": (0, 1), "runaway_chars": (1, 10_000_000)}
_ID_HEADER = {"anthropic": "request-id", "openai": "x-request-id"}


@dataclass
class _Conversation:
    system: str
    users: list[str]  # the user text messages, in order
    rounds: int  # assistant tool-call messages since the last user text message
    answered: bool  # any assistant message yet


def _text_of(content: Any) -> str | None:
    """The text of a message content (string or blocks); None for a tool-result message."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    blocks = [b for b in content if isinstance(b, dict)]
    if any(b.get("type") == "tool_result" for b in blocks):
        return None
    texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
    return "\n".join(texts) if texts else None


def _conversation(body: dict) -> _Conversation:
    system = [_text_of(body.get("system")) or ""]
    users, rounds, answered = [], 0, False
    for m in body["messages"]:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content) or "")
        elif role == "user" and (text := _text_of(content)) is not None:
            users.append(text)
            rounds = 0
        elif role == "assistant":
            answered = True
            blocks = content if isinstance(content, list) else []
            if m.get("tool_calls") or any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks):
                rounds += 1
    return _Conversation("\n".join(s for s in system if s).strip(), users, rounds, answered)


def _key(system: str | None, first_user: str) -> tuple[str, str]:
    return (system or "").strip(), first_user.strip()


def _problem(wire: str, body: dict) -> str | None:
    """Why the API would refuse this request body (400), or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    roles = ("user", "assistant") if wire == "anthropic" else ("system", "developer", "user", "assistant", "tool")
    if wire == "anthropic":
        tokens = body.get("max_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            return "max_tokens: Field required (a positive integer)"
        for key in REFUSED_PARAMS:
            if key in body:
                return f"{key}: is deprecated for this API version and not accepted; remove it from params"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in roles:
            return f"messages.{i}.role: must be one of {', '.join(roles)}"
        if wire == "anthropic" and not isinstance(m.get("content"), (str, list)):
            return f"messages.{i}.content: a string or a list of content blocks"
    return None


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _hex() -> str:
    return uuid.uuid4().hex[:24]


# --- the two wire formats -----------------------------------------------------------------

def _anthropic_message(model: str, text: str, calls: list[Call], thought: str, usage: tuple[int, int]) -> dict:
    content = [{"type": "thinking", "thinking": thought,
                "signature": hashlib.sha256(thought.encode()).hexdigest()}] if thought else []
    content += [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": "toolu_" + _hex(), "name": c["name"], "input": c["arguments"]}
                for c in calls]
    return {"id": "msg_" + _hex(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def _openai_completion(model: str, text: str, calls: list[Call], thought: str, usage: tuple[int, int]) -> dict:
    message = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = [{"id": "call_" + _hex(), "type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c["arguments"])}} for c in calls]
    return {"id": "chatcmpl-" + _hex(), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


# --- the server -----------------------------------------------------------------------------

class SimServer:
    """The simulated model; knobs are keyword arguments, changeable while it runs."""

    def __init__(self, suites: dict[str, Suite], *, wrong_rate: float = 0.0, error_rate: float = 0.0,
                 error_status: int = 529, flaky_rate: float = 0.0, retry_after_ms: int = 1,
                 latency: float = 0.0, reported_model: str | None = None, thinking: bool = False,
                 models: tuple[Behaviour, ...] = (), fault: str | None = None, fault_rate: float = 1.0,
                 runaway_chars: int = 200_000, seed: int = 0, **fingerprint_knobs: Any):
        self.suites = suites
        self._lock = threading.Lock()
        self.set_suites(suites)
        self.requests: deque[tuple[str, dict]] = deque(maxlen=1000)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None  # these four are set by start()
        self.url = self.anthropic_url = self.openai_url = None
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._closing = threading.Event()
        self.configure(wrong_rate=wrong_rate, error_rate=error_rate, error_status=error_status,
                       flaky_rate=flaky_rate, retry_after_ms=retry_after_ms, latency=latency,
                       reported_model=reported_model, thinking=thinking, models=tuple(models), fault=fault,
                       fault_rate=fault_rate, runaway_chars=runaway_chars,
                       **{**sim_fingerprint.DEFAULTS, **fingerprint_knobs})
        self.reset(seed)

    def set_suites(self, suites: dict[str, Suite]) -> None:
        """The suites it answers (replaceable while it runs: new suite files are picked up)."""
        index: dict[tuple[str, str], tuple[Suite, Case]] = {}
        for suite in suites.values():
            for case in suite.cases:
                index.setdefault(_key(case.system, case.turns[0].user), (suite, case))
        with self._lock:
            self.suites, self._index = suites, index
            self._wrong: dict[tuple[str, str], Answer | None] = {}  # wrong answers, made from the suites

    def configure(self, **knobs: Any) -> None:
        """Change knobs (validated), also on a running server: e.g. configure(error_rate=1.0)."""
        for name, value in knobs.items():
            if name not in _KNOBS:
                raise TypeError(f"unknown simulator knob {name!r} (known: {', '.join(_KNOBS)})")
            bounds = _KNOBS[name]
            if isinstance(bounds, frozenset):
                if value not in bounds:
                    raise ValueError(f"{name} must be one of {', '.join(sorted(map(str, bounds)))}, got {value!r}")
            elif bounds and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{name} must be between {bounds[0]} and {bounds[1]}, got {value}")
        with self._lock:
            self.__dict__.update(knobs)

    def reset(self, seed: int | None = None) -> None:
        """Restart the random draws (with a new seed if given) and clear the request log."""
        with self._lock:
            self.seed = self.seed if seed is None else seed
            self._rng = random.Random(self.seed)
            self._flaky_rng = random.Random(f"flaky/{self.seed}")
            self._fingerprint = sim_fingerprint.FingerprintSim(self.seed)
            self.requests.clear()

    # --- one request --------------------------------------------------------------------------

    def handle(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, str], dict | bytes]:
        """(status, headers, JSON body, or raw bytes for a fault) of the answer to one POST."""
        path = path.split("?")[0].rstrip("/")
        wire = {ANTHROPIC_PATH: "anthropic", OPENAI_PATH: "openai"}.get(path)
        rid = "req_" + _hex()
        if wire is None:
            return self._error("anthropic", 404, rid, f"no such endpoint: POST {path}")
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(wire, 400, rid, "the request body must be a JSON object")
        self.requests.append((path, body))
        auth = headers.get("authorization") or ""
        if not (auth.startswith("Bearer ") and auth[7:].strip() or wire == "anthropic" and headers.get("x-api-key")):
            return self._error(wire, 401, rid, "no API key: send x-api-key or Authorization: Bearer")
        if problem := _problem(wire, body):
            return self._error(wire, 400, rid, problem)
        conv = _conversation(body)
        found = self._index.get(_key(conv.system, conv.users[0])) if conv.users else None
        if found and self._chosen(*found, self.error_rate):
            return self._error(wire, self.error_status, rid)
        if self.flaky_rate and (headers.get("x-stainless-retry-count") or "0") == "0":
            with self._lock:
                flaky = self._flaky_rng.random() < self.flaky_rate
            if flaky:
                return self._error(wire, 529, rid)
        if found is None and len(conv.users) == 1 and sim_fingerprint.one_token_request(wire, body):
            token, alternatives = self._fingerprint.answer(wire, body, conv.users[0], {
                k: getattr(self, k) for k in sim_fingerprint.KNOBS})
            usage = (_tokens(json.dumps(body["messages"])), 1)
            shape = _anthropic_message if wire == "anthropic" else _openai_completion
            payload = shape(self.reported_model or body["model"], token, [], "", usage)
            return 200, {_ID_HEADER[wire]: rid}, sim_fingerprint.with_first_token(wire, payload, token, alternatives)
        behaviour = pick(self.models, body)
        text, calls = self._answer(found, conv, behaviour)
        if self.latency:
            self._closing.wait(self.latency)
        thought = (f"The user asks: {conv.users[-1][:200]!r}. Recall what is known and answer briefly."
                   if wire == "anthropic" and self.thinking and conv.users else "")
        usage = (_tokens(json.dumps([body.get("system"), body["messages"], body.get("tools")], ensure_ascii=False)),
                 _tokens(thought + text + (json.dumps(calls) if calls else "")))
        if behaviour:
            usage = (usage[0], behaviour.output_tokens(usage[1]))
        shape = _anthropic_message if wire == "anthropic" else _openai_completion
        answer = 200, {_ID_HEADER[wire]: rid}, shape(self.reported_model or body["model"], text, calls, thought, usage)
        if self.fault and found and self._chosen(*found, self.fault_rate, "fault"):
            return spoil(self.fault, wire, answer, headers, runaway_chars=self.runaway_chars)
        return answer

    def _chosen(self, suite: Suite, case: Case, rate: float, salt: str = "") -> bool:
        """Whether the case is among the `rate` share of its suite's cases (ranked by a hash of
        the seed, `salt` and the prompt) that always get an error, or a fault."""
        if rate <= 0:
            return False
        def rank(c: Case) -> str:
            return hashlib.sha256(f"{self.seed}\0{salt}{c.system}\0{c.turns[0].user}".encode()).hexdigest()
        ranked = sorted(suite.cases, key=rank)
        return case.id in {c.id for c in ranked[: int(rate * len(ranked) + 0.5)]}

    def _answer(self, found: tuple[Suite, Case] | None, conv: _Conversation, behaviour: Behaviour | None) -> Answer:
        if found is None or len(conv.users) > len(found[1].turns):
            return GENERIC, []
        suite, case = found
        ref = case.turns[len(conv.users) - 1].reference
        if ref is None:
            return GENERIC, []
        if not conv.answered:
            rate = self.wrong_rate if behaviour is None or behaviour.wrong_rate is None else behaviour.wrong_rate
            with self._lock:
                wrong = self._rng.random() < rate or bool(behaviour and behaviour.breaks(suite, case))
            if wrong:
                key = (suite.name, case.id)
                if key not in self._wrong:
                    self._wrong[key] = wrong_answer(suite, case)
                if self._wrong[key] is not None:
                    return self._wrong[key]
        if conv.rounds < len(ref.rounds):
            return "", [{"name": c.name, "arguments": c.arguments} for c in ref.rounds[conv.rounds]]
        return ref.text, []

    def _error(self, wire: str, status: int, rid: str, message: str | None = None):
        a_type, o_type, o_code, default = _ERRORS.get(status, (
            "api_error" if status >= 500 else "invalid_request_error",
            "server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}"))
        retry = status in (408, 409, 429) or status >= 500
        headers = {_ID_HEADER[wire]: rid, "x-should-retry": "true" if retry else "false"}
        if retry:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        body = ({"type": "error", "error": {"type": a_type, "message": message or default}, "request_id": rid}
                if wire == "anthropic" else
                {"error": {"message": message or default, "type": o_type, "param": None, "code": o_code}})
        return status, headers, body

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:port (0: a free port) in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        self._closing.clear()
        httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        httpd.sim = self
        self._httpd, self.port = httpd, httpd.server_address[1]
        self.url = self.anthropic_url = f"http://127.0.0.1:{self.port}"
        self.openai_url = self.url + "/v1"
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"canary-sim:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close every connection and wait (briefly) for the handler threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._closing.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            open_conns = list(self._conns.items())
        for conn, _ in open_conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2.0
        for _, thread in open_conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._thread.join(2.0)

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._conns[conn] = threading.current_thread()
            else:
                self._conns.pop(conn, None)
        if opened and self._closing.is_set():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "SimServer":
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent connections from a runner
    sim: SimServer

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a closed connection is no news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the SDKs' connection pools are exercised
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.server.sim.handle(self.path, self.headers, raw)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status, "Overloaded" if status == 529 else None)
        self.send_header("Content-Type", headers.pop("content-type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _announce(sim: SimServer) -> None:
    print(f"canary sim listening on {sim.url} (Anthropic base_url {sim.anthropic_url}, "
          f"OpenAI base_url {sim.openai_url}); Ctrl-C stops it", flush=True)


def serve(suites: dict[str, Suite], port: int, *, on_ready: Callable[[SimServer], None] | None = None,
          on_idle: Callable[[SimServer], None] | None = None, **knobs: Any) -> None:
    """Run the simulator in the foreground until SIGINT or SIGTERM (`canary sim --port N`);
    `on_idle` is called every 0.2 s (e.g. to pick up new suite files).

    Call it from the main thread (it installs signal handlers, restored on return).
    """
    sim, stopping = SimServer(suites, **knobs), threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sim.start(port)
        (on_ready or _announce)(sim)
        while not stopping.wait(0.2):
            if on_idle:
                on_idle(sim)
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
