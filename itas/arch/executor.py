"""Run an architecture over questions: layers in order, the components of a layer concurrently, all questions
concurrently (bounded only by the pool's per-endpoint concurrency limits).

A failed call (``CallError``) fails its question, recorded with the reason; the other questions go on. Any
other error (a bug, bad configuration) stops the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from itas.arch.aio import gather_or_cancel
from itas.arch.context import CallRecord, ComponentContext, QueryRecorder
from itas.arch.result import QuestionRecord, RunResult, critical_path
from itas.arch.state import State, merge_states
from itas.errors import CallError


async def run_architecture(arch: Any, bench: Any, questions: Sequence[Any], pool: Any, *,
                           on_call: Callable[[CallRecord], None] | None = None,
                           on_question: Callable[[QuestionRecord], None] | None = None) -> RunResult:
    """Run ``arch`` on every question and score each final answer with ``bench.score``."""
    arch.check_models(pool.config)
    starts = arch.sample_starts()
    t0 = time.perf_counter()

    async def one(q: Any) -> QuestionRecord:
        record = await run_question(arch, bench, q, pool, starts=starts, on_call=on_call)
        if on_question is not None:
            on_question(record)
        return record

    records = await gather_or_cancel(one(q) for q in questions)
    return RunResult(architecture=arch.name, benchmark=getattr(bench, "name", "?"), questions=tuple(records),
                     cost_unit=getattr(pool.config, "cost_unit", "tokens"), elapsed=time.perf_counter() - t0)


async def run_layers(arch: Any, bench: Any, question: Any, pool: Any, recorder: QueryRecorder, *,
                     starts: dict[tuple[int, int], int] | None = None) -> tuple[State, list[float]]:
    """The final state of one question, and each layer's measured wall time. Raises ``CallError``."""
    starts = starts if starts is not None else arch.sample_starts()
    messages = bench.messages(question)
    state = State(question=question)
    walls: list[float] = []
    for li, layer in enumerate(arch.layers):
        t = time.perf_counter()
        contexts = [ComponentContext(pool=pool, bench=bench, question=question, messages=messages, layer=li,
                                     index=ci, type=comp.type, start=starts[(li, ci)], recorder=recorder)
                    for ci, comp in enumerate(layer)]
        outs = await gather_or_cancel(comp.run(state, ctx) for comp, ctx in zip(layer, contexts, strict=True))
        for comp, out in zip(layer, outs, strict=True):
            if not isinstance(out, State):
                raise TypeError(f"component '{comp.type}' returned {type(out).__name__}, not a State")
        state = merge_states(state, outs)
        walls.append(time.perf_counter() - t)
    return state, walls


async def run_question(arch: Any, bench: Any, question: Any, pool: Any, *,
                       starts: dict[tuple[int, int], int] | None = None,
                       on_call: Callable[[CallRecord], None] | None = None) -> QuestionRecord:
    recorder = QueryRecorder(question=str(question.id), on_call=on_call)
    error: str | None = None
    state: State | None = None
    walls: list[float] = []
    try:
        state, walls = await run_layers(arch, bench, question, pool, recorder, starts=starts)
    except CallError as exc:
        error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - recorder.t0
    calls = tuple(recorder.calls)
    common = dict(latency=critical_path(calls), wall_time=wall, layer_wall_times=tuple(walls),
                  cost=sum(c.cost for c in calls), fallbacks=dict(recorder.fallbacks),
                  truncations=recorder.truncations, calls=calls)
    if error is not None or state is None or not state.candidates:
        return QuestionRecord(id=str(question.id), status="failed", score=0.0, output=None,
                              error=error or "no candidate left", **common)
    output = state.candidates[0].text
    score = await asyncio.to_thread(bench.score, question, output)
    return QuestionRecord(id=str(question.id), status=score.status, score=float(score.value), output=output,
                          extracted=score.extracted, detail=score.detail, final_state=state.to_dict(), **common)


async def run_component(component: Any, state: State, pool: Any, bench: Any, *, layer: int = 0, index: int = 0,
                        start: int = 0, recorder: QueryRecorder | None = None) -> tuple[State, QueryRecorder]:
    """Run one component on one state (for tests and experiments); returns the new state and the recorder."""
    recorder = recorder or QueryRecorder(question=str(state.question.id))
    ctx = ComponentContext(pool=pool, bench=bench, question=state.question, messages=bench.messages(state.question),
                           layer=layer, index=index, type=component.type, start=start, recorder=recorder)
    return await component.run(state, ctx), recorder
