"""The estimate of a grid task's prompt: digit by digit, as SmolLM2's tokenizer spends it, so that constraints and
the projection of an ARC search are upper bounds (the general rule of 3 characters per token counts half)."""

from __future__ import annotations

import pytest

from itas.arch.estimate import estimate, prompt_tokens_of, question_prompt_tokens
from itas.arch.spec import parse_architecture
from itas.arch.tokens import messages_tokens
from itas.benchmarks import load_benchmark
from itas.ttt import TRAIN_COST_FACTOR

# SmolLM2-135M-Instruct's tokenizer on its chat template (with the generation prompt) around the first five
# arc-synthetic questions, and the largest over the first 40 (measured with transformers in the serving
# environment; the synthetic family is seeded, so these do not change)
SMOLLM2_TOKENS = [261, 243, 239, 240, 303]
SMOLLM2_MAX_OF_40 = 347


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("arc-synthetic")


def test_grid_prompts_are_counted_at_or_a_little_above_the_real_tokens(bench):
    qs = bench.questions()
    for q, real in zip(qs, SMOLLM2_TOKENS, strict=False):
        counted = prompt_tokens_of(bench, q)
        assert real <= counted <= 1.2 * real, (q.id, counted, real)
        assert messages_tokens(bench.messages(q)) < 0.65 * real  # what the general rule would say
    assert SMOLLM2_MAX_OF_40 <= question_prompt_tokens(bench, qs[:40]) <= 1.2 * SMOLLM2_MAX_OF_40


def test_other_prompts_keep_the_general_rule(data_dir):
    gsm8k = load_benchmark("gsm8k", data_dir=data_dir)
    qs = gsm8k.questions()[:10]
    assert question_prompt_tokens(gsm8k, qs) == max(messages_tokens(gsm8k.messages(q)) for q in qs)


def test_the_estimate_of_a_ttt_architecture_uses_it(bench):
    qs = bench.questions()[:40]
    prompt = question_prompt_tokens(bench, qs)
    arch = parse_architecture({"layers": [[{"type": "ttt", "model": "smollm2", "steps": 10, "max_tokens": 64,
                                            "samples": 2}]]}, "a.yaml")
    est = estimate(arch, kind=bench.kind, prompt_tokens=prompt, context_lengths={"smollm2": 2048})
    training = TRAIN_COST_FACTOR * 10 * (prompt + 64)
    assert est.calls == 3 and est.prompt_tokens == round(training) + 2 * prompt
    assert est.prompt_tokens > TRAIN_COST_FACTOR * 10 * (SMOLLM2_MAX_OF_40 + 64)
