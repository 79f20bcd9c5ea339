"""A scripted OpenAI-compatible chat server on loopback, for tests of the client and of managed serving.

In a test: ``server = FakeOpenAI(); server.start()``; ``server.script`` is a list of behaviours consumed one
per request (then ``server.default``): ``"ok"``, ``("status", 500)``, ``("429", seconds)``, ``"drop"``
(close the connection without answering), ``("sleep", s)`` (answer after s seconds), ``"truncated"`` (a cut
JSON body), ``"refuse_n"`` (HTTP 400 when n > 1), ``("fewer", m)`` (return at most m choices).
``server.requests`` records every request body. As a script (``python -m tests.fake_openai --port P``) it
serves ``"ok"`` forever, which is what a managed-serving test needs.

LoRA as vLLM does it: with ``lora_runtime`` (as a script: ``--enable-lora`` and the environment variable
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, as vLLM needs both) ``POST /v1/load_lora_adapter`` and
``/v1/unload_lora_adapter`` answer 200, else 404. ``GET /lora`` says how it was started (``runtime``,
``max_rank``, ``max_loras``, ``argv``) and which adapters are loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, model: str = "fake-model", port: int = 0, text: str = "The answer is 42."):
        self.model = model
        self.text = text
        self.script: list = []
        self.default = "ok"
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.refuse_n_always = False
        self.active = 0  # requests being answered right now
        self.lora_runtime = False
        self.lora_info: dict = {}
        self.loaded: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/log":  # the request log, for tests that run this server in a subprocess
                    with outer.lock:
                        return self._json(200, list(outer.requests))
                if self.path == "/lora":
                    with outer.lock:
                        return self._json(200, {"runtime": outer.lora_runtime, **outer.lora_info,
                                                "loaded": sorted(outer.loaded)})
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                route = self.path.rstrip("/").rsplit("/", 1)[-1]
                if route in ("load_lora_adapter", "unload_lora_adapter"):
                    if not outer.lora_runtime:
                        return self._json(404, {"detail": "Not Found"})
                    with outer.lock:
                        (outer.loaded.add if route == "load_lora_adapter" else outer.loaded.discard)(
                            str(body.get("lora_name")))
                    return self._json(200, {"detail": "Success"})
                with outer.lock:
                    outer.requests.append(body)
                    seq = len(outer.requests)
                    action = outer.script.pop(0) if outer.script else outer.default
                    outer.active += 1
                try:
                    self._answer(body, action, seq)
                finally:
                    with outer.lock:
                        outer.active -= 1

            def _answer(self, body, action, seq):
                n = int(body.get("n", 1))
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(action, tuple) and action[0] == "status":
                    return self._json(action[1], {"error": {"message": f"scripted {action[1]}"}})
                if isinstance(action, tuple) and action[0] == "429":
                    return self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": str(action[1])})
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                if (action == "refuse_n" or outer.refuse_n_always) and n > 1:
                    return self._json(400, {"error": {"message": "n > 1 is not supported"}})
                if n > 1 and body.get("temperature") == 0:  # as vLLM
                    return self._json(400, {"error": {"message": f"n must be 1 when using greedy sampling, got {n}."}})
                if isinstance(action, tuple) and action[0] == "fewer":
                    n = min(n, action[1])
                prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", [])) + 5
                choices = [{"index": i, "message": {"role": "assistant", "content": f"{outer.text} r{seq}#{i}"},
                            "finish_reason": "stop"} for i in range(n)]
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": outer.model,
                           "choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 7 * n,
                                                         "total_tokens": prompt_tokens + 7 * n}}
                if action == "truncated":
                    raw = json.dumps(payload).encode()[:40]
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                self._json(200, payload)

            def _json(self, status, payload, headers=None):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread: threading.Thread | None = None

    def start(self) -> FakeOpenAI:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def count(self) -> int:
        return len(self.requests)


@contextlib.contextmanager
def in_process(model: str = "fake-model", delay: float = 0.0, cwd: str | None = None) -> Iterator[str]:
    """This server as a process of its own (its CPU not the caller's) on a free port, answering ``"ok"`` after
    ``delay`` s, until the block ends: its base URL, once it answers."""
    import httpx

    from itas.pool.serving import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--model", model,
                               "--delay", str(delay)], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        t_end = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > t_end:
                raise RuntimeError(f"{url} did not answer")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    ap.add_argument("--enable-lora", action="store_true")
    ap.add_argument("--max-lora-rank", type=int, default=16)
    ap.add_argument("--max-loras", type=int, default=1)
    ap.add_argument("--start-delay", type=float, default=0.0, help="seconds before it listens (a slow start)")
    a = ap.parse_args()
    if a.start_delay:
        import time

        time.sleep(a.start_delay)
    server = FakeOpenAI(model=a.model, port=a.port)
    import os

    runtime = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
    server.lora_runtime = a.enable_lora and runtime
    server.lora_info = {"enable_lora": a.enable_lora, "max_rank": a.max_lora_rank, "max_loras": a.max_loras,
                        "env": runtime, "argv": sys.argv[1:]}
    if a.delay:
        server.default = ("sleep", a.delay)
    server.httpd.serve_forever()
