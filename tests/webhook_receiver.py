"""A fake webhook receiver for the tests: a real HTTP server on 127.0.0.1 in a thread that records every
POST and answers as told (`mode`), can hang, and can be stopped and started again on the same port
(a receiver that is down: nothing listens)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers import free_port

WECOM_OK = b'{"errcode":0,"errmsg":"ok"}'
WECOM_BAD = b'{"errcode":93000,"errmsg":"invalid webhook url, hint: [1700000000_1]"}'


@dataclass
class Hit:
    """One POST as it arrived."""

    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes
    answered: int | None  # our status code; None: we hung

    @property
    def event_id(self) -> int:
        """X-Zonechief-Event-Id."""
        return int(self.headers["X-Zonechief-Event-Id"])

    @property
    def json(self) -> dict:
        """The body."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """mode: "ok" (204), "503", "hang" (reads the request, never answers), "wecom_ok", "wecom_bad" (200 with errcode)."""

    mode: str = "ok"
    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self):
        self._cond = threading.Condition()
        self._release = threading.Event()  # lets hanging handlers go when the receiver stops
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where to point a webhook."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        """Listen (again, on the same port)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = receiver.mode
                code = {"ok": 204, "503": 503, "hang": None}.get(mode, 200)
                with receiver._cond:
                    receiver.hits.append(Hit(time.monotonic(), dict(self.headers), body, code))
                    receiver._cond.notify_all()
                if code is None:
                    receiver._release.wait(120)
                    return
                payload = WECOM_OK if mode == "wecom_ok" else WECOM_BAD if mode == "wecom_bad" else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start`."""
        if self._server is not None:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def answered(self) -> list[Hit]:
        """The POSTs answered 2xx (what the sender counts as delivered, WeCom's errcode aside)."""
        with self._cond:
            return [h for h in self.hits if h.answered is not None and 200 <= h.answered < 300]

    def wait(self, done, timeout: float) -> bool:
        """Wait until `done(hits)` holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.hits):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True
