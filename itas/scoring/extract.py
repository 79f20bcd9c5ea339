"""Answer extractors: pure functions from a model's output to the final answer used for voting and scoring.

Each returns a normalised string (so that equal answers compare equal) or ``None`` when the output holds no
answer. They are registered by the name a benchmark definition uses (``extractor: gsm8k_number``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from fractions import Fraction

from itas.scoring.registry import Registry

Extractor = Callable[[str], "str | None"]
EXTRACTORS: Registry[Extractor] = Registry("extractor")


# ---- locating the answer ------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")


def _braced(text: str, open_at: int) -> tuple[str, int] | None:
    """The content of the brace group opening at ``text[open_at] == '{'`` (nested braces allowed)."""
    depth = 0
    i = open_at
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2  # an escaped brace does not nest
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i], i + 1
        i += 1
    return None


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """Every ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in order: (position, content)."""
    found = []
    for m in _BOXED.finditer(text):
        if m.group(1):
            inner = _braced(text, m.end() - 1)
            if inner is not None:
                found.append((m.start(), inner[0].strip()))
        else:
            word = re.match(r"[^\s$]+", text[m.end():])
            if word:
                found.append((m.start(), word.group(0)))
    return found


def last_boxed(text: str) -> str | None:
    spans = boxed_spans(text)
    return spans[-1][1] if spans else None


_ANSWER_IS = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?", re.IGNORECASE)


def _answer_is_span(text: str) -> tuple[int, str] | None:
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    rest = text[m.end():].strip()
    line = rest.split("\n", 1)[0].strip()
    if line.startswith("$") and line.count("$") >= 2:  # "The answer is $\frac{1}{2}$."
        line = line[1:line.index("$", 1)]
    elif line.startswith("\\(") and "\\)" in line:
        line = line[2:line.index("\\)")]
    inner = last_boxed(line)
    if inner is not None:
        line = inner
    return m.start(), line.strip().rstrip(".").strip()


def _hashes_span(text: str) -> tuple[int, str] | None:
    pos = text.rfind("####")
    if pos < 0:
        return None
    return pos, text[pos + 4:].strip().split("\n", 1)[0].strip()


def final_answer_span(text: str) -> str | None:
    """The text of the final answer: whichever comes last of ``#### X``, ``\\boxed{X}`` and ``The answer is X``."""
    candidates = []
    boxed = boxed_spans(text)
    if boxed:
        candidates.append(boxed[-1])
    for span in (_hashes_span(text), _answer_is_span(text)):
        if span is not None and span[1]:
            candidates.append(span)
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


# ---- numbers (GSM8K) ----------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?!\.\d))?|[-+]?\.\d+")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?[\d.,]+)\s*\}\s*\{\s*([-+]?[\d.,]+)\s*\}")


def _clean_number_text(text: str) -> str:
    text = text.replace("\u2212", "-").replace("\u2013", "-")
    text = re.sub(r"\\text\s*\{([^{}]*)\}", r" \1 ", text)
    text = re.sub(r"\\mathrm\s*\{([^{}]*)\}", r" \1 ", text)
    text = text.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\$", "$").replace("\\%", "%")
    text = _LATEX_FRAC.sub(r"\1/\2", text)
    text = re.sub(r"(?<=\d),\s(?=\d{3}\b)", ",", text)  # "1, 000"
    text = text.replace("$", "")
    text = re.sub(r"-\s+(?=\d)", "-", text)
    return text


def parse_number(text: str) -> Fraction | None:
    """The first number in ``text``: thousands commas, signs, decimals, fractions; units and ``$`` ignored."""
    m = _NUMBER.search(_clean_number_text(text))
    if not m:
        return None
    raw = m.group(0).replace(",", "").replace(" ", "")
    try:
        if "/" in raw:
            num, den = raw.split("/")
            return Fraction(num) / Fraction(den) if Fraction(den) != 0 else None
        return Fraction(raw)
    except (ValueError, ZeroDivisionError):
        return None


def format_number(value: Fraction) -> str:
    """A canonical spelling: ``72``, ``-3``, ``0.5``, ``1/3``."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # a terminating decimal
        sign = "-" if value < 0 else ""
        v = abs(value)
        whole, frac = divmod(v.numerator, v.denominator)
        digits = ""
        while frac:
            frac *= 10
            d, frac = divmod(frac, v.denominator)
            digits += str(d)
        return f"{sign}{whole}.{digits}"
    return f"{value.numerator}/{value.denominator}"


_LAST_NUMBER = re.compile(r"[-+]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


@EXTRACTORS.register("gsm8k_number")
def gsm8k_number(output: str) -> str | None:
    """The number after ``####``, in the last ``\\boxed{}`` or after "The answer is" (whichever comes last);
    failing those, the last number in the output."""
    span = final_answer_span(output)
    value = parse_number(span) if span is not None else None
    if value is None:
        numbers = _LAST_NUMBER.findall(_clean_number_text(output))
        value = parse_number(numbers[-1]) if numbers else None
    return None if value is None else format_number(value)


# ---- LaTeX answers (MATH) -----------------------------------------------------------------------------------


def normalize_latex(answer: str) -> str:
    """A light normalisation of a LaTeX answer so that trivially different spellings vote together."""
    s = answer.strip()
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = re.sub(r"\\text\s*\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|textbf|mathbf)\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\(?:left|right)(?=[()\[\]{}|.\\])", "", s)
    s = re.sub(r"\\[,!;:]|\\quad|\\qquad", "", s)
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\%", "").replace("\\$", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    if re.fullmatch(r"[-+]?\d+\.0+", s):
        s = s.split(".")[0]
    return s


@EXTRACTORS.register("math_answer")
def math_answer(output: str) -> str | None:
    """The last ``\\boxed{}`` (or the text after "The answer is"), lightly normalised."""
    span = final_answer_span(output)
    if span is None or not span.strip():
        return None
    return normalize_latex(span) or None


# ---- text ---------------------------------------------------------------------------------------------------


def normalize_text(answer: str) -> str:
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\s+", " ", s).casefold()
    return s.rstrip(".").strip()


@EXTRACTORS.register("text_answer")
def text_answer(output: str) -> str | None:
    """The final answer span (boxed, ``####``, "The answer is") or else the last non-empty line, normalised."""
    span = final_answer_span(output)
    if span is None:
        lines = [line for line in output.splitlines() if line.strip()]
        span = lines[-1] if lines else None
    if span is None:
        return None
    return normalize_text(span) or None


# ---- code ---------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "py3"}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


@EXTRACTORS.register("python_code")
def python_code(output: str) -> str | None:
    """The program in a model's output: the last fenced Python block that defines something (else the longest
    fenced block); without fences, the output itself (a completion may be an indented function body)."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(output)]
    blocks = [body for lang, body in blocks if lang in _CODE_LANGS and body.strip()]
    if blocks:
        defining = [b for b in blocks if re.search(r"^\s*(?:def|class|import|from)\s", b, re.MULTILINE)]
        code = defining[-1] if defining else max(blocks, key=len)
    else:
        code = output
    lines = code.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    code = "\n".join(line.rstrip() for line in lines).rstrip()
    return code + "\n" if code else None
