"""The call cache: every sampled completion stored under (model, messages, sampling parameters, index).

SQLite in WAL mode, one connection per process, a busy timeout for the other processes that share the file.
Each insert commits on its own, so a killed process loses at most the calls still in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from itas.errors import InputError
from itas.pool.types import Completion, SamplingParams

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  key TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  request TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
  key TEXT NOT NULL,
  idx INTEGER NOT NULL,
  text TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  duration REAL NOT NULL,
  finish_reason TEXT,
  created REAL NOT NULL,
  PRIMARY KEY (key, idx)
);
"""


def request_key(model: str, messages: list[dict], params: SamplingParams) -> str:
    blob = json.dumps({"model": model, "messages": messages, "params": params.key()}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0


class CallCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable call cache ({exc}); move it away or give another --cache") from None

    def lookup(self, key: str, indices: range) -> dict[int, Completion]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, text, prompt_tokens, completion_tokens, duration, finish_reason FROM calls "
                "WHERE key = ? AND idx >= ? AND idx < ?", (key, indices.start, indices.stop)).fetchall()
        found = {
            r[0]: Completion(text=r[1], model="", sample_index=r[0], prompt_tokens=r[2], completion_tokens=r[3],
                             duration=r[4], finish_reason=r[5], cached=True)
            for r in rows
        }
        self.stats.hits += len(found)
        self.stats.misses += len(indices) - len(found)
        return found

    def store(self, key: str, model: str, request: dict, completions: list[Completion]) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO requests (key, model, request) VALUES (?, ?, ?)",
                                 (key, model, json.dumps(request, ensure_ascii=False)))
                self._db.executemany(
                    "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key, c.sample_index, c.text, c.prompt_tokens, c.completion_tokens, c.duration,
                      c.finish_reason, now) for c in completions])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.stats.stored += len(completions)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
