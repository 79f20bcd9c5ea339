"""The latency model of a served model: time of a call from its token counts, calibrated on the idle server.

seconds = ttft_base + ttft_per_prompt_token * prompt_tokens + time_per_output_token * completion_tokens

It makes the latency objective a property of the architecture: queueing under a loaded server does not make
an architecture look slow, and a cached call counts at its recorded tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LatencyModel:
    ttft_base: float
    ttft_per_prompt_token: float
    time_per_output_token: float

    def predict(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (self.ttft_base + self.ttft_per_prompt_token * prompt_tokens
                + self.time_per_output_token * completion_tokens)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatencyModel:
        return cls(float(d["ttft_base"]), float(d["ttft_per_prompt_token"]), float(d["time_per_output_token"]))


def fit(points: list[tuple[int, int, float]]) -> LatencyModel:
    """Least squares of seconds on (1, prompt_tokens, completion_tokens), clipped at zero."""
    import numpy as np

    a = np.array([[1.0, p, c] for p, c, _ in points])
    y = np.array([s for _, _, s in points])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    base, per_prompt, per_out = (max(0.0, float(x)) for x in coef)
    return LatencyModel(base, per_prompt, per_out)
