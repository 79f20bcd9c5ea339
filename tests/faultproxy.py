"""A fault-injecting HTTP proxy on loopback, in front of one OpenAI-compatible server.

``FaultProxy(upstream_url, rate=0.2, seed=0).start()`` listens on 127.0.0.1 and forwards every request to the
upstream server; a seeded random share ``rate`` of the POST requests (the model calls; ``GET /models`` is
always forwarded) gets one of these faults instead, drawn with the same generator:

``500``       HTTP 500 with a JSON error body
``429``       HTTP 429 with ``Retry-After: <retry_after>``
``timeout``   the request is held ``hold`` seconds (longer than the client's timeout), then the connection closes
``drop``      the connection is closed without an answer
``truncate``  the upstream answer, cut: either the full ``Content-Length`` with half the body and the connection
              closed, or a ``Content-Length`` that matches a body cut in the middle of its JSON

``max_consecutive`` (optional) caps the faults in a row on the same request body, so that a test can insist
that every call eventually succeeds within the client's retry policy. ``proxy.log`` records every attempt:
its body and a hash of it (the same for every retry of a request; but a request for sample 0 and a later one for
sample 1 have the same body too), its fault (``ok`` when forwarded), the status sent and ``n``.
As a script: ``python -m tests.faultproxy --upstream URL --port P --rate 0.2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

KINDS = ("500", "429", "timeout", "drop", "truncate")


@dataclass(frozen=True)
class Attempt:
    key: str  # sha256 of the request body: the same for every retry of one call
    path: str
    fault: str  # "ok" (forwarded) or one of KINDS
    status: int | None  # what the client was sent (None: no answer)
    n: int  # samples asked for
    t: float  # when it arrived
    body: dict | None = None  # the request, parsed
    done: float | None = None  # when its answer (or fault) was sent


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.2, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 hold: float = 3.0, retry_after: float = 1.0, max_consecutive: int | None = None, port: int = 0):
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        parsed = urlparse(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.prefix = parsed.path.rstrip("/")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.hold = hold
        self.retry_after = retry_after
        self.max_consecutive = max_consecutive
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log: list[Attempt] = []
        self.in_a_row: dict[str, int] = {}  # faults in a row per request key
        self.capped = 0  # faults the max_consecutive cap turned into forwards
        self.stopping = threading.Event()
        self.handling = 0  # requests being answered: stop() waits until each has logged its attempt
        self.idle = threading.Condition(self.lock)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._forward(self._body())

            def do_POST(self):
                body = self._body()
                arrived = time.time()
                with outer.lock:
                    outer.handling += 1
                key = hashlib.sha256(body).hexdigest()[:20]
                fault = outer._decide(key)
                try:
                    parsed = json.loads(body or b"{}")
                    n = int(parsed.get("n", 1))
                except (ValueError, AttributeError):
                    parsed, n = None, 1
                status = None
                try:
                    if fault == "500":
                        status = 500
                        self._send(500, json.dumps({"error": {"message": "injected fault"}}).encode())
                    elif fault == "429":
                        status = 429
                        self._send(429, json.dumps({"error": {"message": "slow down"}}).encode(),
                                   {"Retry-After": f"{outer.retry_after:g}"})
                    elif fault == "timeout":
                        outer.stopping.wait(outer.hold)
                        self._close()
                    elif fault == "drop":
                        self._close()
                    elif fault == "truncate":
                        self._truncated(body)
                    else:
                        status = self._forward(body)
                finally:
                    with outer.lock:
                        outer.log.append(Attempt(key, self.path, fault, status, n, arrived, parsed, time.time()))
                        outer.handling -= 1
                        outer.idle.notify_all()

            # ---- helpers ----
            def _body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _upstream(self, body: bytes) -> tuple[int, bytes, dict]:
                conn = HTTPConnection(outer.upstream_host, outer.upstream_port, timeout=900)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() in ("content-type", "authorization", "accept")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    keep = {k: v for k, v in resp.getheaders() if k.lower() in ("content-type", "retry-after")}
                    return resp.status, data, keep
                finally:
                    conn.close()

            def _forward(self, body: bytes) -> int:
                try:
                    status, data, headers = self._upstream(body)
                except OSError:
                    self._send(502, json.dumps({"error": {"message": "upstream unreachable"}}).encode())
                    return 502
                self._send(status, data, headers)
                return status

            def _truncated(self, body: bytes) -> None:
                try:
                    status, data, _ = self._upstream(body)
                except OSError:
                    return self._close()
                half = data[: max(1, len(data) // 2)]
                with outer.lock:
                    declared_full = outer.rng.random() < 0.5
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data) if declared_full else len(half)))
                if declared_full:
                    self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(half)
                self.wfile.flush()
                if declared_full:
                    self._close()

            def _send(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                if "content-type" not in {k.lower() for k in (headers or {})}:
                    self.send_header("content-type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _close(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.prefix}"
        self.thread: threading.Thread | None = None

    def _decide(self, key: str) -> str:
        with self.lock:
            fault = self.rng.choice(self.kinds) if self.rng.random() < self.rate else "ok"
            if fault != "ok" and self.max_consecutive is not None and self.in_a_row.get(key, 0) >= self.max_consecutive:
                fault = "ok"
                self.capped += 1
            self.in_a_row[key] = self.in_a_row.get(key, 0) + 1 if fault != "ok" else 0
            return fault

    def start(self) -> FaultProxy:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        # held requests wake up on ``stopping``: wait until every one has logged its attempt, so that what the
        # proxy saw is complete when a test reads it (the handler threads are daemons, not joined on close)
        with self.lock:
            self.idle.wait_for(lambda: self.handling == 0, timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what happened ----
    def attempts(self) -> list[Attempt]:
        """Every attempt answered (or given up) so far, in the order they arrived."""
        with self.lock:
            return sorted(self.log, key=lambda a: a.t)

    def faults(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.attempts():
            out[a.fault] = out.get(a.fault, 0) + 1
        return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hold", type=float, default=3.0)
    a = ap.parse_args()
    proxy = FaultProxy(a.upstream, rate=a.rate, seed=a.seed, hold=a.hold, port=a.port)
    proxy.httpd.serve_forever()
