"""Bodies of `POST /v1/fine_tuning/alpha/graders/run` and `/validate` [reference §3].

The API layer parses the request, calls these, and returns the dict as JSON.
`token_usage` is an int or null, as `openai.types.fine_tuning.alpha` types it.
"""

from __future__ import annotations

from typing import Any

from openrft.errors import InvalidRequest

from ._result import GradeResult
from ._sample import Sample
from ._service import GradingService
from ._spec import Grader, MultiGrader, RemoteGrader

__all__ = ["echo_config", "run_grader", "run_response", "validate_grader"]

_REDACTED = "***"


def echo_config(grader: Grader) -> dict[str, Any]:
    """The grader's config as received, with endpoint headers redacted (Decision 8)."""
    config = dict(grader.config)
    if isinstance(grader, RemoteGrader) and "headers" in config:
        config["headers"] = {name: _REDACTED for name in config["headers"]}
    if isinstance(grader, MultiGrader) and isinstance(config.get("graders"), dict):
        graders = config["graders"]
        if isinstance(graders.get("type"), str):  # the SDK's one-grader form
            config["graders"] = echo_config(next(iter(grader.graders.values())))
        else:
            config["graders"] = {key: echo_config(sub) for key, sub in grader.graders.items()}
    return config


def run_response(result: GradeResult, *, sampled_model_name: str | None = None) -> dict[str, Any]:
    """A GradeResult as OpenAI's GraderRunResponse body."""
    scores: dict[str, Any] = {**result.sub_rewards, **result.metrics}
    return {
        "reward": result.score,
        "metadata": {
            "name": result.name,
            "type": result.type,
            "errors": result.errors.as_dict(),
            "execution_time": result.execution_time,
            "scores": scores,
            "token_usage": result.token_usage,
            "sampled_model_name": sampled_model_name,
        },
        "sub_rewards": dict(result.sub_rewards),
        "model_grader_token_usage_per_model": result.usage_per_model,
    }


async def validate_grader(service: GradingService, config: Any) -> dict[str, Any]:
    """`{"grader": ...}` echoing a valid grader; InvalidRequest names a bad field."""
    grader = await service.validate(config, param="grader")
    return {"grader": echo_config(grader)}


async def run_grader(
    service: GradingService, config: Any, model_sample: Any, item: Any = None
) -> dict[str, Any]:
    """Grade one `model_sample` against `item`, as `/graders/run` does."""
    if not isinstance(model_sample, str):
        raise InvalidRequest("model_sample must be a string", param="model_sample")
    if item is not None and not isinstance(item, dict):
        raise InvalidRequest("item must be an object", param="item")
    grader = await service.validate(config, param="grader")
    result = await service.grade(grader, Sample(output_text=model_sample), item or {})
    return run_response(result)
