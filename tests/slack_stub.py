"""A Slack stub on 127.0.0.1: an incoming webhook and the Web API's chat.postMessage.

It answers each request with the next status of a script (then 200), keeps every message
it accepted, and counts the ones it refused.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlackStub:
    def __init__(self, script: list[int] | None = None):
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
                    status = stub.script.pop(0) if stub.script else 200
                    if status == 200:
                        stub.accepted.append({"path": self.path, "body": body,
                                              "auth": self.headers.get("authorization")})
                    else:
                        stub.refused.append(status)
                api = self.path.startswith("/api/")
                if status == 200:
                    payload = json.dumps({"ok": True, "ts": "1.0"}).encode() if api else b"ok"
                else:
                    payload = json.dumps({"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}
                                         ).encode() if api else b"error"
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
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
