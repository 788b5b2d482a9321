"""A Slack stub on 127.0.0.1: an incoming webhook and the Web API's chat.postMessage.

It answers each request with the next entry of a script (then 200), keeps every message it
accepted, and counts the ones it refused. An entry is an HTTP status (500, 429 with
`Retry-After: 1`) or a `Reply`: any status, Slack's error string (the webhook's text body,
or the Web API's `{"ok": false, "error": ...}`, with HTTP 200 too), and any headers, such
as `Retry-After` given as an HTTP date or as `inf`.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int
    error: str | None = None  # e.g. no_service (404), invalid_token (403), channel_not_found (200, Web API)
    headers: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.error is None


def _reply(entry) -> Reply:
    if isinstance(entry, Reply):
        return entry
    if entry == 429:
        return Reply(429, "ratelimited", {"Retry-After": "1"})
    return Reply(entry, None if entry == 200 else "fatal_error")


class SlackStub:
    def __init__(self, script: list | None = None):
        self.script = list(script or [])
        self.accepted: list[dict] = []
        self.refused: list[int] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                ctype = self.headers.get("content-type", "")
                body = json.loads(raw) if "json" in ctype else dict(
                    (k, v) for k, v in (p.split("=", 1) for p in raw.decode().split("&") if "=" in p))
                with stub.lock:
                    reply = _reply(stub.script.pop(0) if stub.script else 200)
                    if reply.accepted:
                        stub.accepted.append({"path": self.path, "body": body,
                                              "auth": self.headers.get("authorization")})
                    else:
                        stub.refused.append(reply.status)
                api = self.path.startswith("/api/")
                if reply.accepted:
                    payload = json.dumps({"ok": True, "ts": "1.0"}).encode() if api else b"ok"
                elif api:
                    payload = json.dumps({"ok": False, "error": reply.error or "fatal_error"}).encode()
                else:
                    payload = (reply.error or "error").encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json" if api else "text/plain")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
