"""Extractors: pure functions, tested on the formats models write."""

from __future__ import annotations

from fractions import Fraction

import pytest

from itas.scoring import EXTRACTORS
from itas.scoring.extract import (
    boxed_spans,
    gsm8k_number,
    last_boxed,
    math_answer,
    parse_number,
    python_code,
    text_answer,
)


def test_boxed_with_nested_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{\left( 3, \frac{\pi}{2} \right)}.") == \
        r"\left( 3, \frac{\pi}{2} \right)"
    assert last_boxed(r"\boxed{\text{(C)}}") == r"\text{(C)}"
    assert last_boxed(r"\fbox{7}") == "7"
    assert last_boxed(r"\boxed 5$") == "5"
    assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert last_boxed(r"unbalanced \boxed{\frac{1}{2}") is None
    assert last_boxed("nothing here") is None
    assert [c for _, c in boxed_spans(r"\boxed{1} \boxed{2}")] == ["1", "2"]


@pytest.mark.parametrize("output, expected", [
    ("She pays 3 + 4 = 7 dollars.\n#### 7", "7"),
    ("#### 1,234", "1234"),
    ("The answer is $1,234.50.", "1234.5"),
    ("The answer is: -3", "-3"),
    ("The answer is \u22127 degrees.", "-7"),
    ("so the total is \\boxed{\\$18}", "18"),
    ("\\boxed{18 \\text{ dollars}}", "18"),
    ("\\boxed{\\frac{3}{4}}", "0.75"),
    ("The answer is 5.00", "5"),
    ("The answer is 0.5 kg", "0.5"),
    ("The answer is 2/3", "2/3"),
    ("The answer is 1{,}000", "1000"),
    ("The answer is 10%.", "10"),
    ("The final answer is 42.", "42"),
    ("#### 5\nThe answer is 6.", "6"),  # the marker that comes last wins
    ("The answer is 6.\n\\boxed{5}", "5"),
    ("I think it costs 12 and then 15 dollars", "15"),  # no marker: the last number
    ("I cannot solve this.", None),
    ("", None),
])
def test_gsm8k_number(output, expected):
    assert gsm8k_number(output) == expected


def test_parse_number():
    assert parse_number("-$5") == -5
    assert parse_number("$-5") == -5
    assert parse_number("1,000,000 people") == 1000000
    assert parse_number(".5") == Fraction(1, 2)
    assert parse_number("3, 4 and 5") == 3
    assert parse_number("x") is None


@pytest.mark.parametrize("output, expected", [
    (r"The answer is $\boxed{\dfrac{1}{2}}$.", r"\frac{1}{2}"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3,\frac{\pi}{2})"),
    (r"\boxed{90^\circ}", "90"),
    (r"\boxed{\text{(C)}}", "(C)"),
    (r"\boxed{5.0}", "5"),
    (r"The answer is $x^2 + 1$.", "x^2+1"),
    ("no answer", None),
])
def test_math_answer(output, expected):
    assert math_answer(output) == expected


def test_math_answer_equal_spellings_vote_together():
    assert math_answer(r"\boxed{\dfrac{1}{2}}") == math_answer(r"so \boxed{\frac{1}{2}}.")


def test_text_answer():
    assert text_answer("Thinking...\nThe answer is Paris.") == "paris"
    assert text_answer("Paris\n") == "paris"
    assert text_answer("   ") is None


def test_python_code_from_fences():
    out = "Here:\n```python\ndef f(x):\n    return x\n```\nUsage:\n```python\nprint(f(1))\n```"
    assert python_code(out) == "def f(x):\n    return x\n"
    assert python_code("```\nimport math\nx = 1\n```") == "import math\nx = 1\n"
    assert python_code("```py\ndef g(): pass\n```") == "def g(): pass\n"
    assert python_code("```python\ndef cut_off(x):\n    return") == "def cut_off(x):\n    return\n"  # no closing fence


def test_python_code_keeps_the_indentation_of_a_completion():
    body = "\n    s = sorted(x)\n    return s\n"
    assert python_code(body) == "    s = sorted(x)\n    return s\n"
    assert python_code("") is None


def test_registry_has_did_you_mean():
    from itas.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'gsm8k_number'"):
        EXTRACTORS.get("gsm8k_numbr", source="x.yaml", key="extractor")
