"""Architectures: layered LLM systems built from components, their YAML (and Archon JSON), their estimate
and their execution over a benchmark's questions."""

from itas.arch.archon import from_archon, to_archon
from itas.arch.estimate import Estimate, estimate
from itas.arch.executor import run_architecture, run_component, run_question
from itas.arch.result import QuestionRecord, RunMetrics, RunResult, write_run
from itas.arch.spec import Architecture, load_architecture, parse_architecture, shipped_architectures
from itas.arch.state import Candidate, CandidateScore, Critique, Origin, State, merge_states

__all__ = ["Architecture", "Candidate", "CandidateScore", "Critique", "Estimate", "Origin", "QuestionRecord",
           "RunMetrics", "RunResult", "State", "estimate", "from_archon", "load_architecture", "merge_states",
           "parse_architecture", "run_architecture", "run_component", "run_question", "shipped_architectures",
           "to_archon", "write_run"]
