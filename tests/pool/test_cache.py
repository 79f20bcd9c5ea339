"""The call cache: keys, partial hits, and several processes sharing one file."""

from __future__ import annotations

import multiprocessing as mp

from itas.pool.cache import CallCache, request_key
from itas.pool.types import Completion, SamplingParams

P = SamplingParams(temperature=0.5, max_tokens=10)


def comp(i: int, text: str = "t") -> Completion:
    return Completion(text=f"{text}{i}", model="m", sample_index=i, prompt_tokens=3, completion_tokens=2, duration=0.1)


def test_key_depends_on_model_messages_and_params():
    m = [{"role": "user", "content": "q"}]
    k = request_key("a", m, P)
    assert k == request_key("a", [{"content": "q", "role": "user"}], P)
    assert k != request_key("b", m, P)
    assert k != request_key("a", [{"role": "user", "content": "q2"}], P)
    assert k != request_key("a", m, SamplingParams(temperature=0.6, max_tokens=10))


def test_partial_lookup_and_counts(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    cache.store("k", "m", {}, [comp(i) for i in range(5)])
    found = cache.lookup("k", range(3, 8))
    assert sorted(found) == [3, 4] and all(c.cached for c in found.values())
    assert cache.stats.hits == 2 and cache.stats.misses == 3
    assert found[3].duration == 0.1 and found[3].completion_tokens == 2


def test_storing_twice_keeps_the_first(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    cache.store("k", "m", {}, [comp(0, "first")])
    cache.store("k", "m", {}, [comp(0, "second")])
    assert cache.lookup("k", range(1))[0].text == "first0"


def _writer(path: str, worker: int, n: int) -> None:
    cache = CallCache(path)
    for i in range(n):
        cache.store(f"w{worker}-{i}", "m", {}, [comp(j) for j in range(3)])
        cache.store("shared", "m", {}, [comp(i)])


def test_several_processes_share_one_file(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CallCache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    cache = CallCache(path)
    assert cache.count() == 4 * 40 * 3 + 40
    assert len(cache.lookup("shared", range(40))) == 40


def test_a_corrupt_cache_is_a_clear_error(tmp_path):
    import pytest

    from itas.errors import InputError

    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="not a usable call cache"):
        CallCache(bad)
