"""Where itas keeps things outside the repository.

``ITAS_HOME`` (default ``~/.cache/itas``) holds the serving environment (vLLM's CPU build and torch, which
itas itself never imports), the prepared model folders and the state file of managed servers.
"""

from __future__ import annotations

import os
from pathlib import Path


def itas_home() -> Path:
    return Path(os.environ.get("ITAS_HOME") or Path.home() / ".cache" / "itas").expanduser()


def serving_env() -> Path:
    """The virtual environment the vLLM servers run in (override: ``ITAS_SERVING_ENV``)."""
    override = os.environ.get("ITAS_SERVING_ENV")
    return Path(override).expanduser() if override else itas_home() / "serving-env"


def serving_python() -> Path:
    return serving_env() / "bin" / "python"


def models_dir() -> Path:
    override = os.environ.get("ITAS_MODELS_DIR")
    return Path(override).expanduser() if override else itas_home() / "models"


def state_dir() -> Path:
    override = os.environ.get("ITAS_STATE_DIR")
    return Path(override).expanduser() if override else itas_home() / "state"


def shipped_dir(kind: str) -> Path:
    """A folder of shipped definitions (``benchmarks``, ``search_spaces``, ``architectures``).

    From an installed wheel they live inside the package (``itas/_shipped/<kind>``); from a checkout they are
    the top-level folders of the repository.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "_shipped" / kind
    if packaged.is_dir():
        return packaged
    return here.parent / kind
