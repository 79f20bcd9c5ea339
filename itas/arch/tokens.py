"""Token arithmetic without a tokenizer: the estimate of an architecture and the context-window guard.

**Rule: one token per 3 characters, rounded up, plus 8 tokens per chat message** (role markers of the chat
template). Real tokenizers give about 4 characters per token on English prose and fewer on digits and code
(SmolLM2 spends one token per digit), so 3 errs on the side of more tokens: the estimate stays an upper
bound more often, and truncation keeps prompts inside the context window.

**Truncation rule.** When a prompt that quotes candidates would not leave ``max_tokens`` of room in the
model's context window, the candidate texts (never the question, the instructions or the critiques) are cut
to fit: every candidate gets an equal share of the room that is left; a candidate shorter than its share keeps
all of its text and its unused share goes to the longer ones (water-filling); a cut text keeps its beginning
and ends with ``TRUNCATION_MARK``. Each cut text counts as one truncation in the run's counters. Candidates
are cut only in the prompt, never in the state passed on. If the other parts alone leave no room, every
candidate is cut to the mark. The rule is an estimate (LaTeX and digits take more tokens than 3 characters'
worth), so should the server refuse the prompt as longer than the context, the candidate texts are cut again to
3/4, 1/2, 1/4 and then none of their room, in turn, until it is accepted; only a prompt refused even without
them fails its question, with the server's reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 8
TRUNCATION_MARK = " [...truncated]"
REFIT_SCALES = (0.75, 0.5, 0.25, 0.0)  # the candidates' share of their room, tried in turn after a refusal
_OVERFLOW_MARKERS = ("maximum context length", "context_length_exceeded", "context window")


def is_context_overflow(message: str) -> bool:
    """Whether a server's refusal says the prompt is longer than the model's context (vLLM's and OpenAI's words)."""
    text = message.lower()
    return any(m in text for m in _OVERFLOW_MARKERS)


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def messages_tokens(messages: Sequence[dict]) -> int:
    return sum(approx_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def room_chars(context_length: int, max_tokens: int, fixed_tokens: int) -> int:
    """Characters left for candidate texts in a prompt whose other parts take ``fixed_tokens``."""
    return max(0, (context_length - max_tokens - fixed_tokens) * CHARS_PER_TOKEN)


def fit_texts(texts: Sequence[str], budget_chars: int) -> tuple[list[str], int]:
    """The texts cut by the truncation rule to at most ``budget_chars`` in total; and how many were cut."""
    texts = list(texts)
    if sum(len(t) for t in texts) <= budget_chars:
        return texts, 0
    cap = _water_level([len(t) for t in texts], budget_chars)
    out, cut = [], 0
    for t in texts:
        if len(t) <= cap:
            out.append(t)
        else:
            keep = max(0, cap - len(TRUNCATION_MARK))
            out.append(t[:keep].rstrip() + TRUNCATION_MARK)
            cut += 1
    return out, cut


def _water_level(lengths: list[int], budget: int) -> int:
    """The largest cap with sum(min(length, cap)) <= budget."""
    remaining, left = budget, len(lengths)
    for length in sorted(lengths):
        share = remaining // left
        if length > share:
            return share
        remaining -= length
        left -= 1
    return max(lengths, default=0)
