"""Tables and plots of a sampling run, from its results directory alone (no model call): what ``itas sample``
shows at the end, and what ``itas report`` calls for a sampling run.

>>> tables = render("results/sample-20250101-120000")        # writes the tables and plots next to the samples
>>> tables["fit"]["b"], tables["curves"][-1]["coverage"]
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from itas.errors import InputError
from itas.sampling import store
from itas.sampling.analysis import QuestionSamples, analyse

CURVE_FILES = ("curves.csv", "curves.json", "fit.json", "summary.json")
PLOT_FILES = ("coverage.png", "curves.png", "sampling.html")


def is_sampling_run(directory: str | Path) -> bool:
    """Whether ``directory`` holds a sampling run (its config.json is one), for ``itas report`` to dispatch."""
    path = Path(directory) / store.CONFIG
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return isinstance(data, dict) and {"model", "k", "question_ids"} <= set(data)


def _hashable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def question_samples(config: store.SampleConfig, records: dict) -> tuple[list[QuestionSamples], list[str]]:
    """The questions of the run with all of their first K samples recorded (and rewarded by the run's reward,
    when it has one), in the run's order, and the ids of those still incomplete. A judgement without a score is
    a recorded reward of None: the sample has no reward, the question is complete."""
    spec = config.reward_spec
    done: list[QuestionSamples] = []
    incomplete: list[str] = []
    for qid in config.question_ids:
        recs = [records.get((qid, i)) for i in range(config.k)]
        if any(r is None or (spec and r.reward_spec != spec) for r in recs):
            incomplete.append(qid)
            continue
        rewards = np.array([math.nan if r.reward is None else r.reward for r in recs], dtype=float) if spec else None
        done.append(QuestionSamples(
            id=qid, correct=np.array([1.0 if r.correct else 0.0 for r in recs]),
            answers=tuple(_hashable(r.extracted) for r in recs), rewards=rewards,
            completion_tokens=np.array([r.completion_tokens for r in recs], dtype=float)))
    return done, incomplete


def render(results_dir: str | Path, out_dir: str | Path | None = None, *, plots: bool = True) -> dict:
    """Compute the tables of the sampling run in ``results_dir`` and write them, with the plots, into ``out_dir``
    (default: ``results_dir``).

    Returns a JSON-ready dict: ``summary`` (headline numbers), ``curves`` (one row per k: coverage, vote,
    best_of_n, worst_of_n, each with ``_lo``/``_hi`` bounds, ``coverage_fit``, ``completion_tokens``), ``fit``
    (a, b with bounds, status, extrapolation rows, the fitted curve), ``winrate`` (one row per N, or None
    without a reward), ``calibration`` (or None), ``config`` (the run's config) and ``files`` (name -> path).
    Raises InputError when the directory is not a sampling run or no question has its K samples yet.
    """
    directory = Path(results_dir)
    config = store.load_config(directory)
    if config is None:
        raise InputError(f"{directory} is not a sampling run (no {store.CONFIG})")
    records = store.load_samples(directory)
    questions, incomplete = question_samples(config, records)
    if not questions:
        raise InputError(f"{directory}: no question has its {config.k} samples yet; run `itas sample --resume "
                         f"{directory}` to take them")
    reward = config.reward is not None
    tables = analyse(questions, config.k, reward=reward, bootstrap=config.bootstrap, seed=config.seed,
                     level=config.level).to_dict()
    tables["summary"] = {"benchmark": config.benchmark, "model": config.model,
                         "temperature": config.temperature, "max_tokens": config.max_tokens,
                         "reward": config.reward_spec, **tables["summary"],
                         "incomplete_questions": incomplete}
    out = Path(out_dir) if out_dir is not None else directory
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    def wrote(path: Path) -> None:
        files[path.name] = str(path)

    store.write_csv(out / "curves.csv", tables["curves"])
    wrote(out / "curves.csv")
    store.write_json(out / "curves.json", tables["curves"])
    wrote(out / "curves.json")
    store.write_json(out / "fit.json", tables["fit"])
    wrote(out / "fit.json")
    if tables["winrate"] is not None:
        store.write_csv(out / "winrate.csv", tables["winrate"])
        wrote(out / "winrate.csv")
    store.write_json(out / "summary.json", {**tables["summary"], "calibration": tables["calibration"]})
    wrote(out / "summary.json")
    if plots:
        from itas.sampling import plots as p

        wrote(p.coverage_png(tables, out / "coverage.png"))
        wrote(p.curves_png(tables, out / "curves.png"))
        if tables["winrate"] is not None:
            wrote(p.winrate_png(tables, out / "winrate.png"))
        wrote(p.sampling_html(tables, out / "sampling.html"))
    return {**tables, "config": config.to_dict(), "files": files}
