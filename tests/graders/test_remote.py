"""Bedrock's Lambda contract: a reward function on loopback, batches, flapping, ARNs."""

from __future__ import annotations

import io
import json
import time
from asyncio import run
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from openrft.graders import GradeResult, GraderSettings, GradingService, Sample


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]]:
    """Written like AWS's GSM8K sample reward function."""
    trajectories = event if isinstance(event, list) else event.get("trajectories", [])
    results = []
    for trajectory in trajectories:
        response = next(
            m["content"] for m in reversed(trajectory["messages"]) if m["role"] == "assistant"
        )
        reference = trajectory.get("reference_answer") or {}
        truth = reference.get("text", "") if isinstance(reference, dict) else str(reference)
        score = 1.0 if response.strip().endswith(truth.strip()) and truth else 0.0
        results.append({
            "id": trajectory["id"], "aggregate_reward_score": score, "score": score,
            "metrics_list": [{"name": "accuracy", "value": score, "type": "Reward"},
                             {"name": "length", "value": len(response), "type": "Metric"}],
        })  # fmt: skip
    return results


def samples_and_items(n: int) -> tuple[list[Sample], list[dict[str, Any]]]:
    prompt = [{"role": "system", "content": "Solve."}, {"role": "user", "content": "2+2?"}]
    samples = [
        Sample(output_text=f"#### {4 if i % 2 == 0 else 5}", messages=prompt) for i in range(n)
    ]
    items = [{"reference_answer": {"text": "#### 4"}, "task_id": f"t{i}"} for i in range(n)]
    return samples, items


def grade(
    config: dict[str, Any], n: int, **settings: Any
) -> tuple[list[GradeResult], GradingService]:
    service = GradingService(settings=GraderSettings(**settings))

    async def main() -> list[GradeResult]:
        async with service:
            return await service.grade_batch(await service.validate(config), *samples_and_items(n))

    return run(main()), service


def test_lambda_url_is_called_in_batches(loopback: Any) -> None:
    server = loopback(lambda body, headers: (200, lambda_handler(body, None)))
    config = {
        "type": "lambda",
        "lambda": {"function": f"{server.url}/grade"},
        "headers": {"X-Key": "s3cret"},
    }
    results, _ = grade(config, 10, remote_batch_size=4)
    assert sorted(len(r) for r in server.requests) == [2, 4, 4]  # sent concurrently
    assert [r.score for r in results] == [1.0, 0.0] * 5
    assert results[0].metrics == {"accuracy": 1.0, "length": 6.0} and results[0].type == "lambda"
    # Batches go out concurrently, so any may arrive first: pick the one holding sample 0.
    first = next(r[0] for r in server.requests if r[0]["metadata"]["task_id"] == "t0")
    assert set(first) == {"id", "messages", "metadata", "reference_answer"}
    assert first["messages"][-1] == {"role": "assistant", "content": "#### 4"}
    assert first["messages"][0]["role"] == "system"
    assert first["metadata"] == {"reference_answer": {"text": "#### 4"}, "task_id": "t0"}
    assert server.headers[0]["x-key"] == "s3cret"


def test_bad_replies_set_flags(loopback: Any) -> None:
    def handler(body: Any, headers: Any) -> tuple[int, Any]:
        # Answers the first trajectory with a non-number and skips the second.
        return 200, {
            "statusCode": 200,
            "body": json.dumps([{"id": body[0]["id"], "aggregate_reward_score": "high"}]),
        }

    server = loopback(handler)
    (bad, missing), _ = grade({"type": "endpoint", "url": server.url}, 2)
    assert bad.errors.other_error and bad.score == 0.0
    assert missing.errors.unresponsive_reward_error and missing.score == 0.0


def test_flapping_server_is_retried_and_counted(loopback: Any) -> None:
    attempts: dict[str, int] = {}

    def flapping(body: Any, headers: Any) -> tuple[int, Any]:
        # Per batch: first a 500, then a reply too slow for the timeout, then success.
        key = body[0]["id"]
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] == 1:
            return 500, {"error": "boom"}
        if attempts[key] == 2:
            time.sleep(0.6)
        return 200, lambda_handler(body, None)

    server = loopback(flapping)
    settings = {
        "remote_batch_size": 2,
        "request_timeout_s": 0.3,
        "retry_backoff_s": 0.01,
        "max_retries": 3,
    }
    results, service = grade({"type": "endpoint", "url": server.url}, 6, **settings)
    assert [r.score for r in results] == [1.0, 0.0] * 3
    assert all(r.retries == 2 and not r.errors.any for r in results)
    stats = service.stats
    assert (stats.calls, stats.retries, stats.server_errors, stats.timeouts, stats.failures) == (
        9,
        6,
        3,
        3,
        0,
    )


def test_unreachable_endpoint_is_unresponsive(loopback: Any) -> None:
    server = loopback(lambda body, headers: (200, []))
    url = server.url
    server.close()
    results, service = grade(
        {"type": "endpoint", "url": url}, 3, max_retries=2, retry_backoff_s=0.01
    )
    assert all(r.errors.unresponsive_reward_error and r.retries == 2 for r in results)
    assert service.stats.failures == 1  # one batch, given up once


def test_lambda_arn_through_boto3() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:reward"
    client = boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    samples, items = samples_and_items(2)
    reply = json.dumps(
        [{"id": "0", "aggregate_reward_score": 1.0}, {"id": "1", "aggregate_reward_score": 0.0}]
    ).encode()
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(reply), len(reply))},
            {"FunctionName": arn, "InvocationType": "RequestResponse", "Payload": ANY},
        )

        async def main() -> list[GradeResult]:
            async with GradingService(lambda_client=client) as service:
                grader = await service.validate({"type": "lambda", "lambda": {"function": arn}})
                return await service.grade_batch(grader, samples, items)

        results = run(main())
        stubber.assert_no_pending_responses()
    assert [r.score for r in results] == [1.0, 0.0]
