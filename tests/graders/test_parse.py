"""parse_grader: OpenAI's schemas, with `param` naming the bad field."""

from __future__ import annotations

from typing import Any

import pytest

from openrft.errors import InvalidRequest
from openrft.graders import GraderSettings, parse_grader

CHECK = {
    "type": "string_check",
    "name": "c",
    "input": "{{sample.output_text}}",
    "reference": "x",
    "operation": "eq",
}
JUDGE = GraderSettings(judge_base_url="http://127.0.0.1:9/v1")


def _param(config: Any, **settings: Any) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        parse_grader(config, settings=GraderSettings(**settings))
    return caught.value.param


def test_valid_graders_parse() -> None:
    assert parse_grader(CHECK).name == "c"
    python = parse_grader(
        {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1"}
    )
    assert python.type == "python"
    multi = parse_grader(
        {
            "type": "multi",
            "name": "m",
            "graders": {"a": CHECK, "b": CHECK},
            "calculate_output": "min(a, b) ^ 2",
        }
    )
    assert multi.formula.evaluate({"a": 0.5, "b": 1.0}) == 0.25
    judge = {
        "type": "score_model",
        "name": "j",
        "model": "m",
        "input": [{"role": "user", "content": "hi"}],
    }
    assert parse_grader(judge, settings=JUDGE).range == (0.0, 1.0)
    remote = parse_grader({"type": "lambda", "lambda": {"function": "http://127.0.0.1:9000/grade"}})
    assert remote.name == "lambda" and not remote.is_arn


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ([], "grader"),
        ({"name": "x"}, "grader.type"),
        ({"type": "nope", "name": "x"}, "grader.type"),
        ({**CHECK, "operation": "contains"}, "grader.operation"),
        ({**CHECK, "input": 3}, "grader.input"),
        ({k: v for k, v in CHECK.items() if k != "reference"}, "grader.reference"),
        ({**CHECK, "typo": 1}, "grader.typo"),
        (
            {
                "type": "text_similarity",
                "name": "t",
                "input": "a",
                "reference": "b",
                "evaluation_metric": "cosine",
            },
            "grader.evaluation_metric",
        ),
        (
            {"type": "python", "name": "p", "source": "def grade(sample):\n    return 1"},
            "grader.source",
        ),
        ({"type": "python", "name": "p", "source": "def grade(:"}, "grader.source"),
        ({"type": "python", "name": "p", "source": "x = 1"}, "grader.source"),
        (
            {"type": "multi", "name": "m", "graders": {"a": CHECK}, "calculate_output": "a +* 2"},
            "grader.calculate_output",
        ),
        (
            {"type": "multi", "name": "m", "graders": {"a": CHECK}, "calculate_output": "b"},
            "grader.calculate_output",
        ),
        (
            {
                "type": "multi",
                "name": "m",
                "graders": {"a": CHECK},
                "calculate_output": "__import__('os')",
            },
            "grader.calculate_output",
        ),
        (
            {
                "type": "multi",
                "name": "m",
                "graders": {"a": {**CHECK, "operation": "x"}},
                "calculate_output": "a",
            },
            "grader.graders.a.operation",
        ),
        (
            {
                "type": "multi",
                "name": "m",
                "calculate_output": "a",
                "graders": {
                    "a": {"type": "multi", "name": "n", "graders": {}, "calculate_output": "1"}
                },
            },
            "grader.graders.a.type",
        ),  # fmt: skip
        ({"type": "score_model", "name": "j", "model": "m", "input": []}, "grader.input"),
        (
            {
                "type": "score_model",
                "name": "j",
                "model": "m",
                "input": [{"role": "bot", "content": "x"}],
            },
            "grader.input[0].role",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "model": "m",
                "range": [1, 0],
                "input": [{"role": "user", "content": "x"}],
            },
            "grader.range",
        ),
        (
            {
                "type": "score_model",
                "name": "j",
                "model": "m",
                "input": [{"role": "user", "content": "x"}],
            },
            "grader.model",
        ),
        (
            {
                "type": "label_model",
                "name": "l",
                "model": "m",
                "input": [{"role": "user", "content": "x"}],
                "labels": ["a", "b"],
                "passing_labels": ["c"],
            },
            "grader.passing_labels",
        ),  # fmt: skip
        ({"type": "lambda", "lambda": {"function": "ftp://x"}}, "grader.lambda.function"),
        (
            {"type": "lambda", "lambda": {"function": "arn:aws:lambda:bad"}},
            "grader.lambda.function",
        ),
        ({"type": "endpoint", "url": "http://169.254.169.254/latest/meta-data"}, "grader.url"),
        ({"type": "endpoint"}, "grader.url"),
    ],
)
def test_bad_configs_name_the_field(config: Any, param: str) -> None:
    assert _param(config) == param


def test_operator_lists_override_the_default() -> None:
    metadata = {"type": "endpoint", "url": "http://169.254.169.254/x"}
    assert parse_grader(metadata, settings=GraderSettings(url_allowlist=("169.254.0.0/16",)))
    assert (
        _param({"type": "endpoint", "url": "http://127.0.0.1:1/"}, url_denylist=("127.0.0.0/8",))
        == "grader.url"
    )
    assert (
        _param({"type": "endpoint", "url": "http://10.0.0.1/"}, url_allowlist=("127.0.0.1",))
        == "grader.url"
    )


def test_arn_parses_when_boto3_is_installed() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:reward"
    assert parse_grader({"type": "lambda", "lambda": {"function": arn}}).is_arn


def test_sdk_single_grader_form_of_multi() -> None:
    grader = parse_grader(
        {"type": "multi", "name": "m", "graders": CHECK, "calculate_output": "2 * c"}
    )
    assert list(grader.graders) == ["c"]
