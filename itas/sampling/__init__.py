"""Repeated sampling and its scaling laws (``itas sample``).

Sample a model K times per question (through the call cache, so K can grow later without repeating calls),
score every sample, optionally reward it, and measure as functions of k = 1..K: coverage (unbiased pass@k),
majority vote@k, Best-of-N@k and Worst-of-N@k, with bootstrap intervals over questions; fit the Large Language
Monkeys law log(coverage) ≈ a·k^b and extrapolate; and, with a reward, InfAlign's calibrated reward and the
Best/Worst-of-N win rates beside N/(N+1) and 1/(N+1).

- ``estimators``: exact per-question estimators (pure)
- ``scaling``: the power-law fit (pure, numpy)
- ``bootstrap``, ``analysis``: intervals and the tables (pure)
- ``reward``: the judge / reward-model reward, as the best_of_n component computes it
- ``store``: the results directory
- ``runner``: ``sample(SampleRequest)``, what the command calls
- ``report``: ``render(results_dir, out_dir=None) -> dict``, tables and plots from a results directory
"""

from __future__ import annotations

from itas.sampling.estimators import (
    best_of_n_at_k,
    calibrated_rewards,
    pass_at_k,
    select_at_k,
    vote_at_k,
    win_rates,
    worst_of_n_at_k,
)
from itas.sampling.scaling import PowerLawFit, fit_power_law

__all__ = ["PowerLawFit", "best_of_n_at_k", "calibrated_rewards", "fit_power_law", "pass_at_k", "select_at_k",
           "vote_at_k", "win_rates", "worst_of_n_at_k"]
