"""A ready-made math answer grader (GSM8K, MATH), also usable as python-grader source.

This file is standard library only and defines `grade(sample, item)`, so its
text is `GSM8K_GRADER_SOURCE`: a `{"type": "python", "source": ...}` grader that
runs in the sandbox unchanged. The final answer is what follows the last
`####`, else the last `\\boxed{...}`; answers compare as numbers after dropping
`,`, `$`, spaces and a trailing `.` (so "1,000.0" equals "1000"), else as text.
The reference is `item["reference_answer"]` (a string, or an object with
`final_answer`, `text` or `answer`, as in AWS's samples) or GSM8K's `answer`.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_HASHES = re.compile(r"####\s*([^\n]*)")
_FRAC = re.compile(r"^\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            if depth == 0:
                return text[begin:index]
            depth -= 1
    return None


def extract_final_answer(text: str) -> str | None:
    """The answer after the last `####`, else in the last `\\boxed{}`, else None."""
    found = _HASHES.findall(text)
    if found and found[-1].strip():
        return found[-1].strip()
    return _boxed(text)


def _number(text: str) -> Fraction | None:
    cleaned = text.replace(",", "").replace("\\$", "").replace("$", "").replace(" ", "").rstrip(".")
    cleaned = (
        cleaned.removeprefix("\\text{").removesuffix("}")
        if cleaned.startswith("\\text{")
        else cleaned
    )
    match = _FRAC.match(cleaned)
    try:
        if match:
            return Fraction(match.group(1)) / Fraction(match.group(2))
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str, reference: str) -> bool:
    """Numerically equal, or equal as text once spaces and `$` are dropped."""
    a, b = _number(predicted), _number(reference)
    if a is not None and b is not None:
        return a == b
    strip = lambda s: s.replace(" ", "").replace("$", "").rstrip(".")  # noqa: E731
    return strip(predicted) == strip(reference)


def reference_answer(item: dict[str, Any]) -> str | None:
    """The reference's final answer, from the shapes data sets use."""
    reference = item.get("reference_answer", item.get("answer"))
    if isinstance(reference, dict):
        reference = next(
            (reference[k] for k in ("final_answer", "text", "answer") if k in reference), None
        )
    if reference is None:
        return None
    reference = str(reference)
    return extract_final_answer(reference) or reference.strip()


def math_answer_score(output_text: str, item: dict[str, Any]) -> float:
    """1.0 when the sample's final answer equals the reference's, else 0.0."""
    predicted, reference = extract_final_answer(output_text), reference_answer(item)
    if predicted is None or reference is None:
        return 0.0
    return 1.0 if answers_match(predicted, reference) else 0.0


def grade(sample: dict[str, Any], item: dict[str, Any]) -> float:
    """The python-grader entry point (OpenAI's contract)."""
    return math_answer_score(sample.get("output_text") or "", item)
