"""What the ``ttt`` component uses outside itself: a trainer, a way to serve adapters, and where adapters are kept.

The defaults train in the serving environment (``SubprocessTrainer``) and load adapters into vLLM at runtime
(``LoraServing``). Tests swap in fakes for the length of a fixture with ``use(Services(...))``; production code
never looks for them.

**Where adapters are kept** (first that applies): ``Services.adapter_dir``; the environment variable
``ITAS_ADAPTER_DIR``; ``adapters/`` next to the pool's call cache, which is the results directory of a search or
a run (or the folder of a cache shared with ``--cache``, so runs that share calls share adapters too);
``$ITAS_HOME/adapters``.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.paths import itas_home
from itas.ttt.serving import LoraServing
from itas.ttt.store import AdapterStore, Trainer
from itas.ttt.trainer import SubprocessTrainer

ADAPTER_DIR_ENV = "ITAS_ADAPTER_DIR"


@dataclass
class Services:
    trainer: Trainer = field(default_factory=SubprocessTrainer)
    serving: Callable[[Any], Any] = LoraServing  # pool -> an object with base_weights() and loaded()
    adapter_dir: Path | None = None
    _per_pool: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    def serving_for(self, pool: Any) -> Any:
        """The one serving object of ``pool`` (its reference counts must be shared by all its questions)."""
        found = self._per_pool.get(pool)
        if found is None:
            found = self._per_pool[pool] = self.serving(pool)
        return found

    def store_for(self, pool: Any) -> AdapterStore:
        return AdapterStore(self.adapter_root(pool))

    def adapter_root(self, pool: Any) -> Path:
        if self.adapter_dir is not None:
            return Path(self.adapter_dir)
        if os.environ.get(ADAPTER_DIR_ENV):
            return Path(os.environ[ADAPTER_DIR_ENV]).expanduser()
        cache = getattr(pool, "cache", None)
        if cache is not None and getattr(cache, "path", None) is not None:
            return Path(cache.path).parent / "adapters"
        return itas_home() / "adapters"


_current = Services()


def current() -> Services:
    return _current


@contextlib.contextmanager
def use(services: Services) -> Iterator[Services]:
    """Use ``services`` inside the block (tests), then the previous ones again."""
    global _current
    previous, _current = _current, services
    try:
        yield services
    finally:
        _current = previous
