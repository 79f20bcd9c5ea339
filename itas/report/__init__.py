"""Reports of searches: the Pareto front people can read, with statistics, plots, validation on new questions,
and the architecture to use under constraints.

- ``load_run(dir)`` / ``load_study(storage, name)``: a search's trials (``RunData``), read from its Optuna study.
- ``summarise(run, constraints=, validation=)``: the report's content (``RunReport``), pure.
- ``make_report(ReportRequest(...))``: what ``itas report`` calls (validation, plots, HTML, pick file).
- ``bootstrap_interval``, ``paired_bootstrap``, ``sign_flip_test``, ``paired_test``: the statistics (numpy).
- ``parse_constraint``, ``pick``: choosing under ``--pick`` constraints.
- ``to_json``, ``to_csv``, ``to_markdown``: machine-readable output.
"""

from itas.report.make import Report, ReportRequest, make_report, picked_architecture
from itas.report.pick import Constraint, parse_constraint, pick
from itas.report.render import to_csv, to_json, to_markdown
from itas.report.source import QuestionOutcome, RunData, TrialRecord, load_run, load_study
from itas.report.stats import (
    Interval,
    PairedTest,
    bootstrap_interval,
    paired_bootstrap,
    paired_test,
    sign_flip_test,
)
from itas.report.summary import Row, RunReport, Scored, ValidationSet, summarise

__all__ = [
    "Constraint", "Interval", "PairedTest", "QuestionOutcome", "Report", "ReportRequest", "Row", "RunData",
    "RunReport", "Scored", "TrialRecord", "ValidationSet", "bootstrap_interval", "load_run", "load_study",
    "make_report", "paired_bootstrap", "paired_test", "parse_constraint", "pick", "picked_architecture",
    "sign_flip_test", "summarise", "to_csv", "to_json", "to_markdown",
]
