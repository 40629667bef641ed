"""The bodies of /graders/run and /graders/validate, checked with the openai SDK's types."""

from __future__ import annotations

from asyncio import run
from typing import Any

import pytest
from openai.types.fine_tuning.alpha import GraderRunResponse, GraderValidateResponse
from openai.types.fine_tuning.alpha.grader_run_response import MetadataErrors

from openrft.errors import InvalidRequest
from openrft.graders import GSM8K_GRADER_SOURCE, GradingService, run_grader, validate_grader

CHECK = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "operation": "eq"}  # fmt: skip
PYTHON = {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}
MULTI = {"type": "multi", "name": "both", "graders": {"exact": CHECK, "math": PYTHON},
         "calculate_output": "0.5 * exact + 0.5 * math"}  # fmt: skip


def test_run_bodies_validate_with_the_sdk() -> None:
    async def main() -> list[dict[str, Any]]:
        async with GradingService() as service:
            return [
                await run_grader(service, CHECK, "#### 7", {"answer": "#### 7"}),
                await run_grader(service, PYTHON, "#### 7", {"reference_answer": "7"}),
                await run_grader(
                    service, MULTI, "#### 7", {"answer": "7", "reference_answer": "7"}
                ),
            ]

    check, python, multi = run(main())
    for body in (check, python, multi):
        parsed = GraderRunResponse.model_validate(body)
        assert parsed.metadata.token_usage is None
    assert check["reward"] == 1.0 and check["metadata"]["type"] == "string_check"
    assert python["reward"] == 1.0 and python["metadata"]["name"] == "gsm8k"
    assert multi["reward"] == 0.5 and multi["sub_rewards"] == {"exact": 0.0, "math": 1.0}
    sdk_flags = {field.alias or name for name, field in MetadataErrors.model_fields.items()}
    assert set(check["metadata"]["errors"]) == sdk_flags


def test_validate_echoes_and_redacts() -> None:
    endpoint = {
        "type": "endpoint",
        "name": "rm",
        "url": "http://127.0.0.1:9/grade",
        "headers": {"Authorization": "Bearer k"},
    }

    async def main() -> list[dict[str, Any]]:
        async with GradingService() as service:
            return [await validate_grader(service, c) for c in (CHECK, MULTI, endpoint)]

    check, multi, remote = run(main())
    assert GraderValidateResponse.model_validate(check).grader.name == "exact"  # type: ignore[union-attr]
    # multi: the SDK types `graders` as ONE grader (reference §8), so the dict
    # form cannot validate strictly; check the echo and validate a sub-grader.
    assert multi == {"grader": MULTI}
    GraderValidateResponse.model_validate({"grader": multi["grader"]["graders"]["math"]})
    # endpoint graders are outside the SDK's types; the secret is not echoed.
    assert remote["grader"]["headers"] == {"Authorization": "***"}


def test_run_refuses_bad_requests() -> None:
    async def main(config: Any, sample: Any, item: Any) -> None:
        async with GradingService() as service:
            await run_grader(service, config, sample, item)

    for args, param in [((CHECK, 3, None), "model_sample"), ((CHECK, "x", [1]), "item"),
                        (({**CHECK, "operation": "is"}, "x", None), "grader.operation")]:  # fmt: skip
        with pytest.raises(InvalidRequest) as caught:
            run(main(*args))
        assert caught.value.param == param
