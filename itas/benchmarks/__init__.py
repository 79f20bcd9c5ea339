"""Benchmarks: definitions under ``benchmarks/`` (shipped with the package), data lookup, seeded subsets,
prompts, answer extraction and scoring.

    bench = load_benchmark("gsm8k", data_dir="../shared/data")
    q = bench.subset(5, seed=0)[0]
    bench.score(q, "... The answer is 18.")   # Score(value=..., status="correct" | "wrong" | ...)
"""

from __future__ import annotations

from pathlib import Path

from itas.benchmarks.benchmark import Benchmark, build_questions
from itas.benchmarks.data import DATA_DIR_ENV, load_rows, read_file
from itas.benchmarks.definition import BenchmarkDefinition, load_definition, parse_definition
from itas.config import did_you_mean
from itas.errors import InputError
from itas.paths import itas_home, shipped_dir
from itas.sandbox import Sandbox
from itas.scoring import Question, Score

__all__ = ["DATA_DIR_ENV", "Benchmark", "BenchmarkDefinition", "Question", "Score", "builtin_definitions",
           "custom_definition", "list_benchmarks", "load_benchmark", "resolve_definition"]

CUSTOM_SUFFIXES = (".jsonl", ".jsonl.gz", ".json")


def builtin_definitions() -> dict[str, BenchmarkDefinition]:
    """The shipped definitions by name (aliases not included)."""
    folder = shipped_dir("benchmarks")
    found: dict[str, BenchmarkDefinition] = {}
    for path in sorted(folder.glob("*.yaml")):
        definition = load_definition(path)
        found[definition.name] = definition
    return found


def list_benchmarks() -> list[str]:
    return sorted(builtin_definitions())


def custom_definition(path: Path) -> BenchmarkDefinition:
    """The definition of a user's JSONL file: ``<file stem>.yaml`` next to it if there is one (any key of a
    built-in definition; ``data.file`` defaults to the JSONL file), else the defaults: question field
    ``question``, reference field ``answer``, ids from an ``id`` field if rows have one, the ``exact_match``
    scorer."""
    stem = path.name
    for suffix in CUSTOM_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    rows = read_file(path)
    has_id = bool(rows.rows) and all("id" in r for r in rows.rows)
    value = {"name": stem, "data": {"file": str(path.resolve())},
             "fields": {"question": "question", "reference": "answer", **({"id": "id"} if has_id else {})},
             "scorer": "exact_match", "description": f"custom benchmark from {path}"}
    sidecar = path.with_name(stem + ".yaml")
    if not sidecar.is_file():
        return parse_definition(value, str(path))
    from itas.config import load_yaml

    given = load_yaml(sidecar)
    if isinstance(given, dict):  # its keys replace the defaults (anything else is reported by the parser)
        given = {**value, **given}
    return parse_definition(given, str(sidecar))


def resolve_definition(name_or_path: str) -> BenchmarkDefinition:
    """A built-in name or alias, a definition YAML, or a custom JSONL file."""
    builtins = builtin_definitions()
    if name_or_path in builtins:
        return builtins[name_or_path]
    for definition in builtins.values():
        if name_or_path in definition.aliases:
            return definition
    path = Path(name_or_path).expanduser()
    lowered = path.name.lower()
    if lowered.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise InputError(f"benchmark definition {path} does not exist")
        return load_definition(path)
    if lowered.endswith(CUSTOM_SUFFIXES):
        if not path.is_file():
            raise InputError(f"benchmark file {path} does not exist")
        return custom_definition(path)
    names = list(builtins) + [a for d in builtins.values() for a in d.aliases]
    raise InputError(f"unknown benchmark '{name_or_path}'{did_you_mean(name_or_path, names)} "
                     f"(or give a .jsonl file or a definition .yaml)")


def load_benchmark(name_or_path: str, data_dir: str | Path | None = None, *,
                   cache_dir: str | Path | None = None, sandbox: Sandbox | None = None) -> Benchmark:
    """Load a built-in benchmark (``gsm8k``, ``math``/``math500``, ``humaneval``, ``humanevalplus``, ``mbpp``),
    a definition YAML or a custom JSONL file. ``data_dir`` defaults to ``$ITAS_DATA_DIR``; ``cache_dir`` (where
    measured reference runs are kept) defaults to ``$ITAS_HOME/cache``; ``sandbox`` (code benchmarks) defaults to
    the process-wide one. Raises InputError/DataError with a one-line message."""
    definition = resolve_definition(str(name_or_path))
    rows = load_rows(definition, data_dir)
    questions, solutions = build_questions(definition, rows)
    cache = Path(cache_dir) if cache_dir is not None else itas_home() / "cache"
    return Benchmark(definition, questions, solutions, rows.origin, cache, sandbox)
