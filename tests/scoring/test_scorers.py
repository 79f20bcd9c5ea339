"""Scorers on hand-made outputs (the all-references tests live in tests/benchmarks)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from itas.scoring import SCORERS, Question
from itas.scoring.code import assemble_function
from itas.scoring.extract import gsm8k_number, math_answer, python_code, text_answer
from itas.scoring.mathverify import MathVerifyPool


def numeric():
    return SCORERS.get("numeric")(gsm8k_number)


def test_numeric_scorer():
    q = Question("q", "?", "1234")
    s = numeric()
    assert s.score(q, "The answer is $1,234.").status == "correct"
    assert s.score(q, "#### 1234.0").status == "correct"
    for wrong in ("The answer is 1,235.", "#### 12340", "\\boxed{-1234}", "The answer is 123.4"):
        score = s.score(q, wrong)
        assert (score.value, score.status) == (0.0, "wrong"), wrong
    assert s.score(q, "no idea").status == "no_answer"


def test_exact_match_scorer():
    s = SCORERS.get("exact_match")(text_answer)
    q = Question("q", "Capital of France?", ["Paris", "Paris, France"])
    assert s.score(q, "The answer is paris.").value == 1.0
    assert s.score(q, "Lyon").status == "wrong"


def test_math_verify_scorer_from_threads_and_asyncio():
    s = SCORERS.get("math_verify")(math_answer)
    q = Question("q", "?", r"\frac{1}{2}")
    outputs = [r"so \boxed{\frac12}", r"\boxed{0.5}", r"\boxed{\dfrac{2}{4}}", r"\boxed{1/3}", "no answer here"]
    expected = ["correct", "correct", "correct", "wrong", "no_answer"]

    async def main():
        return await asyncio.gather(*(asyncio.to_thread(s.score, q, o) for o in outputs))

    assert [r.status for r in asyncio.run(main())] == expected
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, s.score(q, outputs[i % 5])))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i].status for i in range(10)] == expected * 2


def test_math_verify_time_limit_is_enforced_and_the_pool_recovers():
    pool = MathVerifyPool(workers=1)
    try:
        assert pool.grade("1", r"\boxed{1}", timeout=60)["ok"] is True
        assert pool.grade("x^2", r"\boxed{" + "+".join(["x"] * 5000) + "}", timeout=0.001) is None
        assert pool.grade("2", r"\boxed{2}", timeout=60)["ok"] is True  # a fresh worker took over
    finally:
        pool.close()


def test_assemble_function():
    prompt = 'def f(x):\n    """Double."""\n'
    assert assemble_function(prompt, "    return 2 * x\n", "f") == prompt + "    return 2 * x\n"
    assert assemble_function(prompt, "return 2 * x\n", "f").endswith("    return 2 * x\n")  # body flush left
    full = assemble_function(prompt, "def f(x):\n    return x + x\n", "f")
    ns = {}
    exec(full, ns)
    assert ns["f"](3) == 6
    indented = assemble_function(prompt, "    def f(x):\n        return x * 2\n", "f")
    ns = {}
    exec(indented, ns)
    assert ns["f"](4) == 8


def test_code_extraction_feeds_the_program():
    out = "```python\ndef f(x):\n    return 1\n```"
    assert python_code(out).startswith("def f")


def test_unknown_scorer_did_you_mean():
    from itas.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'numeric'"):
        SCORERS.get("numerc")
