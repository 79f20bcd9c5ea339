"""``ttt``: test-time training. Trains a LoRA adapter of its model on the task's own demonstrations, then
samples answers with it (1 training + samples calls; with ``augmentations`` M >= 1, M x samples sampled and
voted as ``augment_vote`` does).

**Training data.** Leave-one-out tasks: each demonstration in turn is the test of a task made of the others,
written with the benchmark's own prompt (so training and inference see the same text), each also under
``train_augmentations`` augmentations drawn per task (``itas.arc.augment``, kinds chosen by ``transforms``);
the answer is the held-out output grid followed by the chat template's end of turn, so the adapter learns to
stop. The data depends on the task only, not on the test input, so the test inputs of one task share one
adapter. LoRA on the attention projections, alpha = 2 x rank, ``steps`` steps of one sequence (see
``itas/ttt/train_lora.py``), in a separate process with the serving environment's Python.

**Cache.** Adapters are kept by (task, base model, parameters) in the results directory (``itas.ttt.store``,
``itas.ttt.services``): a resumed search, another trial with the same training parameters, or another test input
of the task finds the adapter trained and does not train again.

**Serving.** The adapter is loaded into the model's running vLLM servers while the component samples
(``itas.ttt.serving``: runtime LoRA loading, which the server must allow) and requested by its name.

**Cost and latency.** The training is recorded as one call of kind ``train`` of the base model: its prompt
tokens are ``TRAIN_COST_FACTOR`` (3, forward plus backward pass) x the tokens trained on, priced as input
tokens; its latency is the training's measured time (the recorded time, when the adapter came from the cache),
on the same path as the slowest of the component's samples, which wait for it.

**Defaults** (measured on this project's 2-core CPU with SmolLM2-135M, one colour-permutation task of the
synthetic family, 3 demonstrations, 30 held-out test inputs, greedy): 50 steps at learning rate 1e-3, rank 16,
7 geometric augmentations of each leave-one-out task (24 sequences of ~280 tokens; 2.8 minutes of training on
a loaded machine) took exact matches from 0/30 to 14/30, and 29 of 30 answers ended at the end-of-turn token.
With colour permutations among the training augmentations (60 steps, 3e-4) it was 1/30: an augmentation that
changes the task's rule (permuting the colours of a colour-permutation task, rotating a rotation task) teaches
other rules, which a model this small cannot tell apart in context. Which kinds keep a task's rule depends on
the task, so ``transforms`` is a search parameter.

A question that is not a grid task, or whose demonstrations give no training sequence, trains nothing: its
training call has 0 tokens and 0 s, and the base model samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass, replace

from itas.arc.augment import TRANSFORMS, augmentation_list
from itas.arc.grids import render_grid
from itas.arc.task import Problem, format_problem, leave_one_out, problem_of
from itas.arch.context import CallRecord
from itas.arch.state import Candidate
from itas.components.augment_vote import Plan, sample_plan, vote_state, voted_flow
from itas.components.base import Component, EstimateEnv, Flow, ModelUsage, Step, param
from itas.components.registry import register
from itas.pool.types import SamplingParams
from itas.ttt import services as ttt_services
from itas.ttt.job import TRAIN_COST_FACTOR, Adapter, TrainingJob, TrainingSequence
from itas.ttt.serving import adapter_params

_TURNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its training lock


def _training_turn() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _TURNS.get(loop)
    if lock is None:
        lock = _TURNS[loop] = asyncio.Lock()
    return lock


def training_sequences(ctx, problem: Problem, augmentations: int, transforms: str,
                       seed: int) -> tuple[TrainingSequence, ...]:
    """The leave-one-out sequences of the task, each as it is and under ``augmentations`` augmentations."""
    out = []
    for i, (demos, held) in enumerate(leave_one_out(problem.train)):
        for aug in augmentation_list(1 + augmentations, seed, f"ttt:{problem.task}:{i}", transforms):
            text = format_problem(aug.apply_pairs(demos), aug.apply(held.input))
            messages = ctx.bench.messages(replace(ctx.question, text=text))
            out.append(TrainingSequence(tuple(messages), render_grid(aug.apply(held.output))))
    return tuple(out)


@register
@dataclass(frozen=True)
class TestTimeTraining(Component):
    type = "ttt"
    summary = ("trains a LoRA adapter on the task's demonstrations (separate process), then samples with it "
               "(1 training + samples calls, x augmentations when voting)")
    needs_candidates = False
    __test__ = False  # not a pytest test class, whatever its name

    model: str = param(help="a model of the pool, served by vLLM with runtime LoRA loading")
    samples: int = param(1, min=1, max=256, help="answers sampled (per augmentation, when voting)")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)
    steps: int = param(50, min=1, max=100_000, help="training steps, one sequence each")
    rank: int = param(16, min=1, max=256, help="LoRA rank (the server's --max-lora-rank must be at least this)")
    learning_rate: float = param(1e-3, min=0.0, max=1.0)
    train_augmentations: int = param(7, min=0, max=64,
                                     help="augmented copies of each leave-one-out task in the training data")
    augmentations: int = param(0, min=0, max=16,
                               help="0: sample the task as it is; M >= 1: sample under M augmentations and vote")
    transforms: str = param("geometric", choices=TRANSFORMS,
                            help="augmentation kinds: geometric, colours or all (training and voting)")
    seed: int = param(0, min=0, help="draws the training order and the augmentations")

    def sample_width(self) -> int:
        return max(1, self.augmentations) * self.samples

    # ---- running ---------------------------------------------------------------------------------------------
    def job(self, ctx, problem: Problem) -> TrainingJob | None:
        sequences = training_sequences(ctx, problem, self.train_augmentations, self.transforms, self.seed)
        if not sequences:
            return None
        return TrainingJob(task=problem.task, served_model=ctx.pool.config[self.model].model, sequences=sequences,
                           steps=self.steps, rank=self.rank, alpha=2.0 * self.rank,
                           learning_rate=self.learning_rate, seed=self.seed,
                           max_length=ctx.pool.context_length(self.model))

    async def adapter(self, ctx, job: TrainingJob) -> Adapter:
        """The cached adapter of ``job``, or one trained now. Questions waiting for a training wait here, not
        in a worker thread (the threads also score answers), one training at a time."""
        services = ttt_services.current()
        store = services.store_for(ctx.pool)
        found = store.lookup(job)
        if found is not None:
            return found
        async with _training_turn():
            found = store.lookup(job)  # trained while this question waited
            if found is not None:
                return found
            weights = await services.serving_for(ctx.pool).base_weights(self.model)
            return await asyncio.to_thread(store.obtain, job, weights, services.trainer)

    async def run(self, state, ctx):
        t0 = time.perf_counter()
        problem = problem_of(ctx.question)
        job = self.job(ctx, problem) if problem is not None else None
        adapter = await self.adapter(ctx, job) if job is not None else None
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        loaded = contextlib.nullcontext()
        if adapter is not None:
            params = adapter_params(params, adapter.name)
            loaded = ttt_services.current().serving_for(ctx.pool).loaded(self.model, adapter.name, adapter.path)
        first_call = len(ctx.recorder.calls)
        async with loaded:
            if self.augmentations == 0:
                completions = await ctx.generate(self.model, ctx.generator_messages(), params, k=self.samples)
                out = state.adding_candidates(Candidate(c.text, ctx.origin(self.model, c.sample_index))
                                              for c in completions)
            else:
                plan = Plan.make(ctx, self.augmentations, self.transforms, self.seed)
                groups = await sample_plan(ctx, plan, self.model, params, self.samples)
                out = vote_state(ctx, state, plan, groups, self.model, self.samples)
        self._record_training(ctx, adapter, first_call, t0)
        return out

    def _record_training(self, ctx, adapter: Adapter | None, first_call: int, t0: float) -> None:
        """One call of kind ``train``, on the path of the slowest of this component's samples."""
        mine = [c for c in ctx.recorder.calls[first_call:] if (c.layer, c.component) == (ctx.layer, ctx.index)]
        chain = max(mine, key=lambda c: c.latency).chain if mine else 0
        tokens = adapter.report.cost_tokens if adapter else 0
        seconds = adapter.report.seconds if adapter else 0.0
        ctx.recorder.add(CallRecord(
            question=ctx.recorder.question, layer=ctx.layer, component=ctx.index, type=ctx.type, model=self.model,
            sample_index=0, prompt_tokens=tokens, completion_tokens=0, duration=seconds, latency=seconds,
            cost=ctx.pool.cost(self.model, tokens, 0), cached=bool(adapter and adapter.cached), chain=chain,
            started=max(0.0, t0 - ctx.recorder.t0), kind="train", finish_reason=None))

    # ---- the estimate ----------------------------------------------------------------------------------------
    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        calls = max(1, self.augmentations) * self.samples
        sequence = env.prompt_tokens + self.max_tokens  # a leave-one-out sequence is shorter than the task
        limit = (env.context_lengths or {}).get(self.model)
        if limit is not None:
            sequence = min(sequence, limit)
        training = ModelUsage(self.model, 1, round(TRAIN_COST_FACTOR * self.steps * sequence), 0)
        sampling = env.usage(self.model, calls, env.prompt_tokens, self.max_tokens)
        if self.augmentations == 0:
            new = tuple((i, self.max_tokens) for i in env.new_ids(self.samples))
            out = replace(flow, candidates=flow.candidates + new)
        else:
            out = voted_flow(flow, env, calls, self.max_tokens)
        return Step(out=out, usage=(training, sampling))
