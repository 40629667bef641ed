"""Bedrock's reward functions: `lambda` (URL or ARN) and `endpoint` (URL).

The Lambda contract [bedrock_rft.md §3]: a POST of a bare JSON list of
`{"id", "messages" (the prompt plus the assistant's answer), "metadata" (every
extra field of the data line, reference_answer included), "reference_answer"}`,
in batches; the reply is a list of `{"id", "aggregate_reward_score",
"metrics_list": [{"name", "value", "type"}]}` matched by id. We also accept
what AWS's own samples send back: `score` beside or instead of
`aggregate_reward_score`, `reward_components`, and an API Gateway style
`{"statusCode", "body"}` wrapper.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from ._context import GradingContext
from ._http import RemoteCallError, post_json
from ._result import GraderErrors, GradeResult
from ._sample import Sample
from ._spec import RemoteGrader

__all__ = ["grade_remote", "trajectory"]


def trajectory(sample: Sample, item: dict[str, Any], id: str) -> dict[str, Any]:
    """One sample in the Lambda contract's shape."""
    metadata = dict(item)
    if isinstance(item.get("metadata"), dict):
        # A data line with its own `metadata` (AWS's Nemotron sample) is read as
        # `metadata.test_cases`; top-level fields still win on a clash.
        metadata = {**item["metadata"], **{k: v for k, v in item.items() if k != "metadata"}}
    return {
        "id": id,
        "messages": [*sample.messages, sample.assistant_message()],
        "metadata": metadata,
        "reference_answer": item.get("reference_answer"),
    }


def _entries(reply: Any) -> list[Any]:
    if isinstance(reply, dict) and "body" in reply:
        body = reply["body"]
        reply = json.loads(body) if isinstance(body, str) else body
    if isinstance(reply, dict):
        for key in ("results", "rewards", "trajectories"):
            if isinstance(reply.get(key), list):
                return list(reply[key])
        return [reply]
    if not isinstance(reply, list):
        raise ValueError("the reply is not a list")
    return reply


def _metrics(entry: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for metric in entry.get("metrics_list") or []:
        if isinstance(metric, dict) and isinstance(metric.get("value"), int | float):
            metrics[str(metric.get("name"))] = float(metric["value"])
    for name, value in (entry.get("reward_components") or {}).items():
        if isinstance(value, int | float):
            metrics[str(name)] = float(value)
    return metrics


def _result(grader: RemoteGrader, entry: Any, retries: int) -> GradeResult:
    base = {"name": grader.name, "type": grader.kind, "retries": retries}
    if entry is None:  # the function answered, but not for this id
        return GradeResult(**base, errors=GraderErrors(unresponsive_reward_error=True))
    score = (
        entry.get("aggregate_reward_score", entry.get("score")) if isinstance(entry, dict) else None
    )
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return GradeResult(**base, errors=GraderErrors(other_error=True))
    return GradeResult(**base, score=float(score), metrics=_metrics(entry))


def _invoke_arn(ctx: GradingContext, arn: str, batch: list[dict[str, Any]]) -> Any:
    import boto3  # the optional `aws` extra; parse_grader checked it is installed
    from botocore.exceptions import BotoCoreError, ClientError

    client = ctx.lambda_client or boto3.client("lambda", region_name=arn.split(":")[3])
    try:
        response = client.invoke(
            FunctionName=arn, InvocationType="RequestResponse", Payload=json.dumps(batch).encode()
        )
    except (BotoCoreError, ClientError) as exc:
        raise RemoteCallError(f"Lambda invoke failed: {exc}", retries=0) from exc
    payload = response["Payload"].read()
    if response.get("FunctionError"):
        raise RemoteCallError(f"Lambda function error: {payload[:500]!r}", retries=0)
    try:
        return json.loads(payload)
    except ValueError:
        raise RemoteCallError("Lambda reply is not JSON", retries=0) from None


async def _call(
    grader: RemoteGrader, batch: list[dict[str, Any]], ctx: GradingContext
) -> tuple[Any, int]:
    async with ctx.limit:
        if grader.is_arn:
            return await asyncio.to_thread(_invoke_arn, ctx, grader.target, batch), 0
        headers = dict(grader.headers)
        return await post_json(
            ctx.client,
            grader.target,
            batch,
            settings=ctx.settings,
            stats=ctx.stats,
            headers=headers,
        )


async def _grade_batch(
    grader: RemoteGrader, batch: list[dict[str, Any]], ctx: GradingContext
) -> list[GradeResult]:
    try:
        reply, retries = await _call(grader, batch, ctx)
        by_id = {str(e.get("id")): e for e in _entries(reply) if isinstance(e, dict)}
    except RemoteCallError as exc:
        failed = GradeResult(
            name=grader.name,
            type=grader.kind,
            retries=exc.retries,
            errors=GraderErrors(unresponsive_reward_error=True),
        )
        return [failed] * len(batch)
    except ValueError:  # a reply of the wrong shape
        return [
            GradeResult(name=grader.name, type=grader.kind, errors=GraderErrors(other_error=True))
        ] * len(batch)
    return [_result(grader, by_id.get(t["id"]), retries) for t in batch]


async def grade_remote(
    grader: RemoteGrader, samples: list[Sample], items: list[dict[str, Any]], ctx: GradingContext
) -> list[GradeResult]:
    """Grade every sample through the reward function, a batch per request."""
    ids = [s.id for s in samples]
    if None in ids or len(set(ids)) != len(ids):
        ids = [str(index) for index in range(len(samples))]  # ids must match replies 1:1
    trajectories = [trajectory(s, i, str(id)) for s, i, id in zip(samples, items, ids, strict=True)]
    size = ctx.settings.remote_batch_size
    batches = [trajectories[i : i + size] for i in range(0, len(trajectories), size)]
    graded = await asyncio.gather(*(_grade_batch(grader, batch, ctx) for batch in batches))
    return [result for batch in graded for result in batch]
