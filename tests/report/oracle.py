"""A scripted OpenAI-compatible server for report tests: answers GSM8K questions right with a per-model
probability, so a search over it has a non-trivial front (voting helps, the better model is dearer).

Every answer ends "The answer is N." with N the reference (right) or a random other number (wrong). Whether an
answer is right is drawn from a generator seeded by (model, prompt, choice index, how often this prompt was
seen), so a search over it is reproducible. ``requests`` records every request body, calibration probes
included (their prompt is a run of "apple").
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OracleOpenAI:
    def __init__(self, answers: dict[str, str], accuracy: dict[str, float]):
        self.answers = answers  # question text -> reference answer
        self.accuracy = accuracy  # served model id -> probability of a right answer
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.seen: Counter = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                models = [{"id": m, "object": "model"} for m in outer.accuracy]
                self._json(200, {"object": "list", "data": models})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with outer.lock:
                    outer.requests.append(body)
                self._json(200, outer.answer(body))

            def _json(self, status, payload):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, body: dict) -> dict:
        model = body.get("model", "")
        n = int(body.get("n", 1))
        text = "\n".join(m.get("content", "") for m in body.get("messages", []))
        reference = next((a for q, a in self.answers.items() if q in text), None)
        with self.lock:
            self.seen[(model, text)] += 1
            occurrence = self.seen[(model, text)]
        choices = []
        for i in range(n):
            seed = hashlib.sha256(f"{model}|{text}|{i}|{occurrence}".encode()).hexdigest()
            rng = random.Random(seed)
            if reference is None:
                content = "1. Fine."
            elif rng.random() < self.accuracy.get(model, 0.5):
                content = f"Some steps. The answer is {reference}."
            else:
                content = f"Some steps. The answer is {rng.randint(1, 10_000) + 0.5:g}."
            choices.append({"index": i, "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop"})
        prompt_tokens = len(text.split()) + 5
        return {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 9 * n,
                          "total_tokens": prompt_tokens + 9 * n}}

    def start(self) -> OracleOpenAI:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def model_requests(self) -> list[dict]:
        """Requests of itas itself (not the latency calibration's)."""
        with self.lock:
            return [r for r in self.requests if "apple" not in r["messages"][0]["content"]]
