"""Values that cross the pool boundary: sampling parameters in, completions out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    max_tokens: int = 512
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # server-specific parameters passed through unchanged (e.g. vLLM's min_tokens), as sorted (name, value) pairs
    extra: tuple[tuple[str, object], ...] = ()

    def key(self) -> dict:
        """What identifies the distribution sampled from (the cache key uses it)."""
        key = {"temperature": self.temperature, "max_tokens": self.max_tokens, "top_p": self.top_p,
               "stop": list(self.stop), "seed": self.seed}
        if self.extra:
            key["extra"] = [list(kv) for kv in self.extra]
        return key


@dataclass(frozen=True)
class Completion:
    """One call: one sampled completion.

    ``prompt_tokens`` is the full prompt of the request (as if the sample had been asked for alone), so that
    the cost of a sample does not depend on how samples were batched into requests with ``n``.
    ``completion_tokens`` is exact for requests with n=1; for n>1 the request's total is split across the
    choices in proportion to their text length (servers report only the total).
    """

    text: str
    model: str
    sample_index: int
    prompt_tokens: int
    completion_tokens: int
    duration: float  # seconds: wall time of the request that produced it
    finish_reason: str | None = None
    cached: bool = False
    extra: dict = field(default_factory=dict, compare=False)
