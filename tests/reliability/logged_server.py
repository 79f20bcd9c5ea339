"""The scripted OpenAI-compatible server (tests/fake_openai.py) as a script that also logs every request to a
JSONL file, one line when it arrives (with its body) and one when it has been answered, so that a test can
tell which calls a killed client had in flight. The file survives the server (a managed server is stopped by
the search that owns it).

``python -m tests.reliability.logged_server --port P --log FILE [--model ID] [--delay S]``
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from tests.fake_openai import FakeOpenAI


class RequestLog(list):
    """Stands in for ``FakeOpenAI.requests`` (appended to under the server's lock, once per request)."""

    def __init__(self, path: str):
        super().__init__()
        self.file = open(path, "a", buffering=1, encoding="utf-8")
        self.write_lock = threading.Lock()
        self.current = threading.local()

    def write(self, record: dict) -> None:
        with self.write_lock:
            self.file.write(json.dumps(record) + "\n")

    def append(self, body: dict) -> None:
        super().append(body)
        rid = f"{os.getpid()}-{len(self)}"
        self.current.rid = rid
        self.write({"event": "received", "id": rid, "t": time.time(), "body": body})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args()
    server = FakeOpenAI(model=a.model, port=a.port)
    if a.delay:
        server.default = ("sleep", a.delay)
    log = RequestLog(a.log)
    server.requests = log
    handler = server.httpd.RequestHandlerClass
    answer = handler.do_POST

    def do_post(self):
        log.current.rid = None
        answer(self)
        if log.current.rid:
            log.write({"event": "answered", "id": log.current.rid, "t": time.time()})

    handler.do_POST = do_post
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
