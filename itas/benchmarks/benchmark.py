"""A loaded benchmark: its questions, prompt, extractor and scorer."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from itas.benchmarks.data import Rows, row_value
from itas.benchmarks.definition import BenchmarkDefinition
from itas.config import did_you_mean
from itas.errors import DataError, InputError
from itas.sandbox import Sandbox
from itas.scoring import EXTRACTORS, SCORERS, Question, Score, Scorer

_PLACEHOLDER = re.compile(r"\{question\}")
_FIELD_TEMPLATE = re.compile(r"\{(\w+)(?:\[(\d+)\])?\}")


def question_fields(question: str) -> list[str]:
    """The fields a ``fields.question`` entry reads: one field name, or a template like
    ``"{prompt}\\n{test_list[0]}"``."""
    if "{" not in question:
        return [question]
    return [m.group(1) for m in _FIELD_TEMPLATE.finditer(question)]


def _question_text(template: str, row: dict, where: str) -> object:
    if "{" not in template:
        return row_value(row, template, where)

    def fill(m: re.Match) -> str:
        value = row_value(row, m.group(1), where)
        if m.group(2) is not None:
            if not isinstance(value, list) or int(m.group(2)) >= len(value):
                raise DataError(f"{where}: field '{m.group(1)}' has no item {m.group(2)}")
            value = value[int(m.group(2))]
        return str(value)

    return _FIELD_TEMPLATE.sub(fill, template)


def build_questions(definition: BenchmarkDefinition, rows: Rows) -> tuple[list[Question], dict[str, str]]:
    """Questions from rows (and the reference solutions, by question id)."""
    f = definition.fields
    ref_extract = EXTRACTORS.get(f.reference_extractor) if f.reference_extractor else None
    questions: list[Question] = []
    solutions: dict[str, str] = {}
    seen: dict[str, str] = {}
    for n, row in enumerate(rows.rows):
        where = f"{rows.origin}:{rows.lines[n]}" if rows.lines else f"{rows.origin} row {n}"
        if f.id:
            qid = f.id_prefix + str(row_value(row, f.id, where))
        else:
            qid = f"{definition.name}/{definition.split}/{n}"
        if qid in seen:
            raise DataError(f"{where}: duplicate question id '{qid}' (also at {seen[qid]})")
        seen[qid] = where
        text = _question_text(f.question, row, where)
        if not isinstance(text, str):
            raise DataError(f"{where}: field '{f.question}' must be a string, got {type(text).__name__}")
        if isinstance(f.reference, str):
            reference = row_value(row, f.reference, where)
        else:
            reference = {key: row_value(row, name, where) for key, name in f.reference}
        if ref_extract is not None:
            extracted = ref_extract(str(reference))
            if extracted is None:
                raise DataError(f"{where}: no answer in field '{f.reference}' "
                                f"(reference_extractor {f.reference_extractor})")
            reference = extracted
        if isinstance(reference, dict) and f.solution and "solution" not in reference and f.solution in row:
            reference = {**reference, "solution": row[f.solution]}
        meta = {key: row[key] for key in f.meta if key in row}
        questions.append(Question(id=qid, text=text, reference=reference, meta=meta))
        if f.solution and isinstance(row.get(f.solution), str):
            solutions[qid] = row[f.solution]
    if not questions:
        raise DataError(f"{rows.origin}: no questions")
    return questions, solutions


class Benchmark:
    """One loaded benchmark. Create with :func:`itas.benchmarks.load_benchmark`."""

    def __init__(self, definition: BenchmarkDefinition, questions: list[Question], solutions: dict[str, str],
                 origin: str, cache_dir: Path | None = None, sandbox: Sandbox | None = None):
        self.definition = definition
        self.name = definition.name
        self.kind = definition.kind
        self.origin = origin
        self._questions = list(questions)
        self._by_id = {q.id: q for q in questions}
        self._order = {q.id: i for i, q in enumerate(questions)}
        self._solutions = dict(solutions)
        self._extract = EXTRACTORS.get(definition.extractor, source=definition.source, key="extractor")
        scorer_cls = SCORERS.get(definition.scorer, source=definition.source, key="scorer")
        self.scorer: Scorer = scorer_cls(self._extract, definition.scorer_options, cache_dir)
        if sandbox is not None and hasattr(self.scorer, "sandbox"):
            self.scorer.sandbox = sandbox  # code scorers: run in this sandbox instead of the process-wide one

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, {len(self._questions)} questions from {self.origin})"

    # ---- questions ---------------------------------------------------------------------------------------
    def questions(self) -> list[Question]:
        return list(self._questions)

    def question(self, qid: str) -> Question:
        try:
            return self._by_id[qid]
        except KeyError:
            hint = did_you_mean(qid, self._by_id) if len(self._by_id) < 2000 else ""
            raise InputError(f"benchmark '{self.name}' has no question '{qid}'"
                             f"{hint.split(' Allowed:')[0]}") from None

    def by_ids(self, ids: Iterable[str]) -> list[Question]:
        """The questions with these ids, in the given order (e.g. a subset recorded by a search)."""
        return [self.question(qid) for qid in ids]

    def subset(self, k: int | None, seed: int, exclude: Iterable[str] = frozenset()) -> list[Question]:
        """``k`` questions chosen with ``seed`` (all when ``k`` is None or too large), in dataset order.

        Stratified by the definition's ``stratify`` fields (MATH: subject and level): each stratum gets its
        proportional share (largest remainders, ties by a seeded draw). ``exclude`` (question ids) gives a subset
        disjoint from another one, e.g. a validation set next to a search subset."""
        excluded = set(exclude)
        pool = [q for q in self._questions if q.id not in excluded]
        if k is not None and k < 0:
            raise InputError(f"subset size must be at least 0, got {k}")
        if k is None or k >= len(pool):
            return pool
        rng = random.Random(seed)
        strata: dict[tuple, list[Question]] = defaultdict(list)
        for q in pool:
            strata[tuple(str(q.meta.get(key)) for key in self.definition.stratify)].append(q)
        keys = sorted(strata)
        quotas = {key: k * len(strata[key]) / len(pool) for key in keys}
        take = {key: int(quotas[key]) for key in keys}
        left = k - sum(take.values())
        tiebreak = {key: rng.random() for key in keys}
        for key in sorted(keys, key=lambda key: (-(quotas[key] - take[key]), tiebreak[key]))[:left]:
            take[key] += 1
        chosen: list[Question] = []
        for key in keys:
            chosen += rng.sample(strata[key], take[key])
        return sorted(chosen, key=lambda q: self._order[q.id])

    def reference_output(self, q: Question) -> str | None:
        """The data's reference solution written as a model output (it scores correct), if the data has one."""
        return self._solutions.get(q.id)

    # ---- prompting and grading ---------------------------------------------------------------------------
    def messages(self, q: Question) -> list[dict]:
        content = _PLACEHOLDER.sub(lambda _: q.text, self.definition.prompt)
        return [{"role": "user", "content": content}]

    def extract(self, output: str) -> str | None:
        """The final answer used for voting, normalised so that equal answers compare equal (for code: the
        program)."""
        try:
            return self._extract(output)
        except Exception:  # noqa: BLE001 - model output never breaks a vote
            return None

    def score(self, q: Question, output: str) -> Score:
        """Grade one output. Thread-safe; may run subprocesses; never raises because of the output."""
        if not isinstance(output, str):
            return Score(0.0, "no_answer", None, f"output is {type(output).__name__}, not text")
        return self.scorer.score(q, output)

    def score_many(self, items: Sequence[tuple[Question, str]], workers: int | None = None) -> list[Score]:
        """Grade many outputs in parallel (bounded by the sandbox / math-verify worker counts)."""
        if not items:
            return []
        n = workers or _default_workers(self.scorer)
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(lambda item: self.score(*item), items))

    def prepare(self, questions: Iterable[Question] | None = None) -> None:
        """Do per-question work ahead of scoring (code: measure the reference solutions' run times)."""
        self.scorer.prepare(self._questions if questions is None else list(questions))

    def run_tests(self, q: Question, code: str, tests: list[str]) -> list[bool]:
        """Code benchmarks only: run model-written assert statements against a candidate, in the sandbox."""
        return self.scorer.run_tests(q, code, tests)


def _default_workers(scorer: Scorer) -> int:
    from itas.scoring.code import CodeScorer
    from itas.scoring.mathverify import MathVerifyScorer, math_pool

    if isinstance(scorer, CodeScorer):
        return scorer._sandbox().workers
    if isinstance(scorer, MathVerifyScorer):
        return math_pool().size * 2  # keep every worker busy while the next request is written
    return 1  # pure Python scorers: threads would only contend for the GIL
