"""string_check, text_similarity, templates, multi formulas and the math grader."""

from __future__ import annotations

from asyncio import run
from typing import Any

import pytest

from openrft.graders import (
    GradeResult,
    GraderSettings,
    GradingService,
    Sample,
    extract_final_answer,
    math_answer_score,
    parse_grader,
)


def grade(config: dict[str, Any], text: str, item: dict[str, Any], **settings: Any) -> GradeResult:
    async def main() -> GradeResult:
        async with GradingService(settings=GraderSettings(**settings)) as service:
            return await service.grade(service.parse(config), Sample(output_text=text), item)

    return run(main())


def check(operation: str, reference: str = "{{ item.answer }}") -> dict[str, Any]:
    return {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}",
            "reference": reference, "operation": operation}  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "text", "answer", "score"),
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "paris", "Paris", 0.0),
        ("ne", "paris", "Paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "It is Paris.", "Paris", 1.0),
        ("like", "It is paris.", "Paris", 0.0),
        ("ilike", "IT IS PARIS.", "Paris", 1.0),
        ("ilike", "It is Lyon.", "Paris", 0.0),
    ],
)
def test_string_check(operation: str, text: str, answer: str, score: float) -> None:
    result = grade(check(operation), text, {"answer": answer})
    assert result.score == score and not result.errors.any


def test_templates_reach_nested_json_and_tools() -> None:
    config = {"type": "string_check", "name": "c", "operation": "eq",
              "input": "{{sample.output_json.city.name}}|{{sample.output_tools[0].function.name}}",
              "reference": "{{ item.truth.city }}|{{item.truth.tool}}"}  # fmt: skip
    sample = Sample(
        output_text='{"city": {"name": "Oslo"}}', output_tools=[{"function": {"name": "lookup"}}]
    )

    async def main() -> GradeResult:
        async with GradingService() as service:
            return await service.grade(
                parse_grader(config), sample, {"truth": {"city": "Oslo", "tool": "lookup"}}
            )

    assert run(main()).score == 1.0


def test_unknown_variable_flags_invalid_variable_error() -> None:
    result = grade(check("eq", "{{ item.missing }}"), "x", {"answer": "x"})
    assert result.score == 0.0 and result.errors.invalid_variable_error
    assert grade(check("eq", "{{ other.x }}"), "x", {}).errors.invalid_variable_error


def test_output_json_of_plain_text_flags_sample_parse_error() -> None:
    config = check("eq", "x") | {"input": "{{ sample.output_json.a }}"}
    result = grade(config, "not json", {})
    assert result.score == 0.0 and result.errors.sample_parse_error


def test_truncated_sample_flags_truncated_observation_error() -> None:
    async def main() -> list[GradeResult]:
        async with GradingService() as service:
            samples = [Sample(output_text="x", finish_reason="length"), Sample(output_text="x")]
            return await service.grade_batch(parse_grader(check("eq", "x")), samples, [{}, {}])

    cut, whole = run(main())
    assert cut.score == 0.0 and cut.errors.truncated_observation_error
    assert whole.score == 1.0 and not whole.errors.any


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # Hand-checked: "the cat sat on the mat" vs "the cat sat on a mat".
        ("fuzzy_match", 0.9048),  # Indel ratio: 2 * 19 matches / 42 characters
        ("rouge_1", 0.8333),  # 5 of 6 unigrams on each side
        ("rouge_2", 0.6),  # 3 of 5 bigrams
        ("rouge_l", 0.8333),  # LCS of 5 tokens
        ("bleu", 0.5373),  # sacrebleu: n-gram precisions 5/6, 3/5, 2/4, 1/3
        ("gleu", 0.6111),  # min(recall, precision) over 1..4-grams: 11/18
        ("meteor", 0.7433),  # 5 exact matches in 2 chunks
    ],
)
def test_text_similarity(metric: str, expected: float) -> None:
    config = {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
              "reference": "{{item.ref}}", "evaluation_metric": metric}  # fmt: skip
    result = grade(config, "the cat sat on the mat", {"ref": "the cat sat on a mat"})
    assert result.score == pytest.approx(expected, abs=1e-4)
    assert grade(config, "same words here", {"ref": "same words here"}).score == pytest.approx(
        1.0 if metric != "meteor" else 0.9815, abs=1e-4
    )


def test_meteor_has_no_synonyms() -> None:
    config = {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
              "reference": "big dog", "evaluation_metric": "meteor"}  # fmt: skip
    # WordNet would also match large~big; offline only the stem dogs~dog matches:
    # P = R = 1/2 so Fmean = 1/2, one chunk of one match: penalty 0.5 * 1^3 -> 0.25.
    assert grade(config, "large dogs", {}).score == pytest.approx(0.25)


class _Letters:
    """A tiny local embedder: letter counts (the boundary, not the grader)."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[float(t.count(c)) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


def test_cosine_with_a_local_embedder() -> None:
    config = {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
              "reference": "ab", "evaluation_metric": "cosine"}  # fmt: skip
    settings = GraderSettings(embedding_model="letters")

    async def main() -> float:
        async with GradingService(settings=settings, embedder=_Letters()) as service:
            return (
                await service.grade(service.parse(config), Sample(output_text="aabb"), {})
            ).score

    assert run(main()) == pytest.approx(1.0)


def test_multi_formula_and_its_errors() -> None:
    config = {
        "type": "multi", "name": "m",
        "graders": {"exact": check("eq"), "near": check("ilike")},
        "calculate_output": "0.75 * exact + 0.25 * near + max(0, -1) ^ 2",
    }  # fmt: skip
    result = grade(config, "PARIS", {"answer": "Paris"})
    assert result.score == pytest.approx(0.25)
    assert result.sub_rewards == {"exact": 0.0, "near": 1.0}
    broken = grade(config | {"calculate_output": "exact / near"}, "Lyon", {"answer": "Paris"})
    assert broken.score == 0.0 and broken.errors.formula_parse_error


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so 3 + 4 = 7\n#### 7", "7"),
        ("#### $1,000.0", "$1,000.0"),  # normalised only when compared
        ("The answer is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nothing here", None),
    ],
)
def test_extract_final_answer(text: str, answer: str | None) -> None:
    assert extract_final_answer(text) == answer


@pytest.mark.parametrize(
    ("text", "item", "score"),
    [
        ("work... #### 1,000", {"reference_answer": "#### 1000"}, 1.0),
        ("#### 18.0", {"answer": "Janet sells... #### 18"}, 1.0),  # GSM8K's own field
        ("\\boxed{0.5}", {"reference_answer": {"final_answer": "1/2"}}, 1.0),
        ("#### $16", {"reference_answer": {"text": "#### 16"}}, 1.0),  # AWS sample shape
        ("#### 17", {"reference_answer": "18"}, 0.0),
        ("18", {"reference_answer": "18"}, 0.0),  # no final-answer marker
    ],
)
def test_math_answer_score(text: str, item: dict[str, Any], score: float) -> None:
    assert math_answer_score(text, item) == score
