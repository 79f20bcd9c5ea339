"""Finding and reading a benchmark's rows: the data directory first, then an installed package that carries the
data, then the Hugging Face hub through ``datasets``. Offline with no local copy, the error says where the data
was looked for and how to provide it."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from itas.benchmarks.definition import BenchmarkDefinition
from itas.errors import DataError

DATA_DIR_ENV = "ITAS_DATA_DIR"


@dataclass(frozen=True)
class Rows:
    rows: list[dict]
    origin: str  # where they came from, for messages and run records
    lines: list[int] | None = None  # the line of each row in a JSONL file (for messages)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else None


def read_file(path: Path) -> Rows:
    """Rows of a ``.jsonl``, ``.jsonl.gz`` or ``.json`` (a list of objects) file."""
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: malformed JSON: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: expected a JSON list of objects")
        return Rows(data, str(path))
    rows, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{n}: malformed JSON: {exc}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
        lines.append(n)
    return Rows(rows, str(path), lines)


def load_rows(definition: BenchmarkDefinition, data_dir: str | Path | None) -> Rows:
    src = definition.data
    if src.loader is not None:
        from itas.benchmarks.loaders import get_loader

        loader = get_loader(src.loader.name, source=definition.source, key="data.loader")
        return loader.load(definition, src.loader.options, resolve_data_dir(data_dir))
    tried: list[str] = []
    directory = resolve_data_dir(data_dir)
    if src.file:
        candidates = []
        if Path(src.file).is_absolute():
            candidates.append(Path(src.file))
        else:
            if directory is not None:
                candidates.append(directory / src.file)
            if definition.folder is not None and not _is_shipped(definition):
                candidates.append(definition.folder / src.file)
        for path in candidates:
            if path.is_file():
                return read_file(path)
        if directory is None and not Path(src.file).is_absolute():
            tried.append(f"no data directory given (--data-dir or {DATA_DIR_ENV}) to look for {src.file}")
        for path in candidates:
            tried.append(f"{path} does not exist")
    if src.package:
        module = src.package.module
        if importlib.util.find_spec(module.split(".")[0]) is None:
            tried.append(f"package '{module}' is not installed")
        else:
            try:
                resource = resources.files(module).joinpath(src.package.path)
                with resources.as_file(resource) as path:
                    if Path(path).is_file():
                        rows = read_file(Path(path))
                        return Rows(rows.rows, f"{module}:{src.package.path}", rows.lines)
                tried.append(f"package '{module}' has no {src.package.path}")
            except (ModuleNotFoundError, OSError) as exc:
                tried.append(f"package '{module}': {exc}")
    if src.hub:
        hub = src.hub
        where = f"hub dataset {hub.path}" + (f" ({hub.name})" if hub.name else "") + f", split {hub.split}"
        try:
            import datasets  # heavy: only when it is needed
        except ImportError:
            tried.append(f"{where}: the 'datasets' package is not installed")
        else:
            offline = _hub_unreachable()
            if offline:
                tried.append(f"{where}: {offline}")
            else:
                try:
                    ds = datasets.load_dataset(hub.path, hub.name, split=hub.split)
                    return Rows([dict(r) for r in ds], f"hf://{hub.path}" + (f"/{hub.name}" if hub.name else ""))
                except Exception as exc:  # noqa: BLE001 - offline, unknown dataset, ...: all mean "not here"
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    tried.append(f"{where}: {first}")
    how = (f"put {src.file} in a folder and pass --data-dir DIR or set {DATA_DIR_ENV}" if src.file
           else "install the package that carries it or connect to the Hugging Face hub")
    raise DataError(f"no data for benchmark '{definition.name}': {'; '.join(tried) or 'no source declared'}. "
                    f"To provide it: {how}")


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, found in a few seconds (``datasets`` itself retries for half a minute);
    None when it may be (or when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` ask for the local hub cache)."""
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return None
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return f"cannot reach {host} (offline?): {exc.strerror or exc}"
    return None


def _is_shipped(definition: BenchmarkDefinition) -> bool:
    from itas.paths import shipped_dir

    try:
        return Path(definition.source).resolve().parent == shipped_dir("benchmarks").resolve()
    except OSError:
        return False


def row_value(row: dict, field: str, where: str) -> Any:
    if field not in row:
        raise DataError(f"{where}: missing field '{field}' (fields: {', '.join(sorted(row)) or 'none'})")
    return row[field]
