"""``augment_vote``: augmented inference for grid tasks. Samples answers to M augmented versions of the task
(rotations, reflections, colour permutations, reordered demonstrations; the first is the task itself, see
``itas.arc.augment``), maps every answer back through its augmentation's inverse, votes hierarchically (within
each augmentation, then across them: ``itas.arc.vote``) and appends the top two answers (M x samples calls).

The first new candidate holds both answers as ARC's two attempts (``itas.arc.grids.render_attempts``: the
benchmark's scorer counts either), the second new candidate the runner-up alone. Each has the share of
augmentations that kept it as its ``augment_vote`` score. A candidate's origin sample is its position among the
component's samples (augmentation x samples + sample), unique within the component.

On a question that is not a grid task (no ``train``/``test_input`` in its meta) every augmentation is the
identity: M x samples samples of the question, answers read by the benchmark's extractor, the same two-level
vote, and the top two candidates passed on as they were written. Samples with no answer do not vote; if no
sample has one, the first sample is passed on unchanged (scored as no answer, not counted as a fallback: the
component parses only answers, as a generator does).

``vote_under_augmentations`` is shared with ``ttt`` (which samples with its adapter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from itas.arc.augment import IDENTITY, TRANSFORMS, Augmentation, augmentation_list
from itas.arc.grids import parse_grid, render_attempts, render_grid
from itas.arc.task import Problem, format_problem, problem_of
from itas.arc.vote import hierarchical_vote
from itas.arch.aio import gather_or_cancel
from itas.arch.state import Candidate, CandidateScore, State
from itas.components.base import Component, EstimateEnv, Flow, Step, param
from itas.components.registry import register
from itas.pool.types import Completion, SamplingParams

WITHIN = 3  # answers each augmentation keeps for the vote across augmentations
KEEP = 2  # ARC's two attempts


@dataclass(frozen=True)
class Plan:
    """The prompts of one question under its augmentations; identical prompts share one request."""

    problem: Problem | None
    augmentations: tuple[Augmentation, ...]
    prompts: tuple[list[dict], ...]
    batches: tuple[tuple[int, ...], ...]  # indices of augmentations whose prompts are identical

    @classmethod
    def make(cls, ctx, n: int, transforms: str, seed: int) -> Plan:
        problem = problem_of(ctx.question)
        if problem is None:
            augs = [IDENTITY] * n
            prompts = [ctx.generator_messages() for _ in augs]
        else:
            augs = augmentation_list(n, seed, str(ctx.question.id), transforms)
            prompts = [augmented_messages(ctx, problem, a) for a in augs]
        batches: dict[str, list[int]] = {}
        for i, messages in enumerate(prompts):
            batches.setdefault(json.dumps(messages, sort_keys=True), []).append(i)
        return cls(problem, tuple(augs), tuple(prompts), tuple(tuple(b) for b in batches.values()))


def augmented_messages(ctx, problem: Problem, aug: Augmentation) -> list[dict]:
    """The benchmark's prompt for the problem seen through ``aug``."""
    text = format_problem(aug.apply_pairs(problem.train), aug.apply(problem.test_input))
    return ctx.bench.messages(replace(ctx.question, text=text))


async def sample_plan(ctx, plan: Plan, model: str, params: SamplingParams, samples: int) -> list[list[Completion]]:
    """``samples`` completions per augmentation (a batch of identical prompts asks for them in one request)."""
    results = await gather_or_cancel(ctx.generate(model, plan.prompts[batch[0]], params, k=samples * len(batch))
                                     for batch in plan.batches)
    groups: list[list[Completion]] = [[] for _ in plan.augmentations]
    for batch, completions in zip(plan.batches, results, strict=True):
        for j, a in enumerate(batch):
            groups[a] = completions[j * samples:(j + 1) * samples]
    return groups


def vote_state(ctx, state: State, plan: Plan, groups: list[list[Completion]], model: str, samples: int) -> State:
    """``state`` with the top two voted answers appended (see the module's docstring)."""
    answers = [[_answer(ctx, plan.problem, aug, c.text) for c in group]
               for aug, group in zip(plan.augmentations, groups, strict=True)]
    ranked = hierarchical_vote(answers, within=WITHIN, keep=KEEP)
    if not ranked:
        return state.adding_candidates([Candidate(groups[0][0].text, ctx.origin(model, 0))])
    if plan.problem is not None:
        grids = [parse_grid(r.answer) for r in ranked]
        texts = [render_attempts(grids)] + [render_grid(g) for g in grids[1:]]
    else:
        texts = [groups[r.first[0]][r.first[1]].text for r in ranked]
    cands = [Candidate(text, ctx.origin(model, r.first[0] * samples + r.first[1]))
             for text, r in zip(texts, ranked, strict=True)]
    n = len(plan.augmentations)
    scores = [CandidateScore(c.id, r.votes / n, "augment_vote") for c, r in zip(cands, ranked, strict=True)]
    return state.adding_candidates(cands).with_scores(scores)


def _answer(ctx, problem: Problem | None, aug: Augmentation, text: str) -> str | None:
    if problem is None:
        return ctx.extract(text)
    grid = parse_grid(text)
    return render_grid(aug.invert(grid)) if grid is not None else None


async def vote_under_augmentations(ctx, state: State, *, model: str, params: SamplingParams, samples: int,
                                   augmentations: int, transforms: str, seed: int) -> State:
    plan = Plan.make(ctx, augmentations, transforms, seed)
    groups = await sample_plan(ctx, plan, model, params, samples)
    return vote_state(ctx, state, plan, groups, model, samples)


def voted_flow(flow: Flow, env: EstimateEnv, calls: int, max_tokens: int) -> Flow:
    """What an augmented vote passes on: up to two new candidates (one when there is a single sample)."""
    ids = env.new_ids(min(KEEP, calls))
    bounds = [2 * max_tokens + 8, max_tokens]  # the first holds both attempts
    new = tuple((cid, bound) for cid, bound in zip(ids, bounds, strict=False))
    return replace(flow, candidates=flow.candidates + new, exact=flow.exact and calls == 1)


@register
@dataclass(frozen=True)
class AugmentVote(Component):
    type = "augment_vote"
    summary = ("samples a grid task under M invertible augmentations, maps the answers back, votes "
               "hierarchically, keeps the top two (augmentations x samples calls)")
    needs_candidates = False

    model: str = param(help="a model of the pool")
    augmentations: int = param(4, min=1, max=16, help="M: augmented versions of the task, the first the task itself")
    samples: int = param(1, min=1, max=256, help="answers sampled per augmentation")
    temperature: float = param(0.0, min=0.0, max=5.0)
    max_tokens: int = param(512, min=1)
    transforms: str = param("geometric", choices=TRANSFORMS,
                            help="geometric (rotations, reflections), colours (permutations of 1-9) or all")
    seed: int = param(0, min=0, help="draws the augmentations (with the question's id)")

    def sample_width(self) -> int:
        return self.augmentations * self.samples

    async def run(self, state, ctx):
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        return await vote_under_augmentations(ctx, state, model=self.model, params=params, samples=self.samples,
                                              augmentations=self.augmentations, transforms=self.transforms,
                                              seed=self.seed)

    def step(self, flow: Flow, env: EstimateEnv) -> Step:
        calls = self.augmentations * self.samples
        return Step(out=voted_flow(flow, env, calls, self.max_tokens),
                    usage=(env.usage(self.model, calls, env.prompt_tokens, self.max_tokens),))
