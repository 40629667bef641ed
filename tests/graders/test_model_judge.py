"""score_model and label_model against an OpenAI-compatible judge on loopback."""

from __future__ import annotations

from asyncio import run
from typing import Any

from openrft.graders import GradeResult, GraderSettings, GradingService, Sample

# The judge's canned replies, chosen by the item's `case`, which the grader's
# template puts into the prompt.
REPLIES = {
    "json": '{"result": 0.7, "steps": [{"description": "checked", "conclusion": "ok"}]}',
    "fenced": '```json\n{"result": 4}\n```',
    "bare": "0.25",
    "words": "It looks rather good to me.",
    "label_good": '{"result": "good"}',
    "label_bare": "bad",
    "label_other": "excellent",
}


def judge_server(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    prompt = body["messages"][-1]["content"]
    case = prompt.rsplit("CASE:", 1)[-1].strip()
    if case == "down":
        return 503, {"error": {"message": "overloaded"}}
    message: dict[str, Any] = {"role": "assistant", "content": REPLIES.get(case), "refusal": None}
    if case == "refuse":
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return 200, {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [choice],
        "usage": usage,
    }


def score_model(**extra: Any) -> dict[str, Any]:
    return {"type": "score_model", "name": "judge", "model": "judge-model", "range": [0, 2],
            "input": [{"role": "system", "content": "Grade the answer."},
                      {"role": "user", "content": [{"type": "input_text", "text": "Answer: {{sample.output_text}}"},
                                                   {"type": "input_text", "text": "CASE:{{item.case}}"}]}],
            **extra}  # fmt: skip


def label_model() -> dict[str, Any]:
    return {"type": "label_model", "name": "labels", "model": "judge-model", "labels": ["good", "bad"],
            "passing_labels": ["good"], "input": [{"role": "user", "content": "{{sample.output_text}} CASE:{{item.case}}"}]}  # fmt: skip


def grade_cases(url: str, config: dict[str, Any], cases: list[str]) -> list[GradeResult]:
    settings = GraderSettings(
        judge_base_url=f"{url}/v1", judge_api_key="sk-judge", max_retries=1, retry_backoff_s=0.01
    )

    async def main() -> list[GradeResult]:
        async with GradingService(settings=settings) as service:
            grader = await service.validate(config)
            samples = [Sample(output_text="42")] * len(cases)
            return await service.grade_batch(grader, samples, [{"case": c} for c in cases])

    return run(main())


def test_score_model(loopback: Any) -> None:
    server = loopback(judge_server)
    config = score_model(
        sampling_params={"temperature": 0.0, "max_completions_tokens": 64, "seed": 1}
    )
    cases = ["json", "fenced", "bare", "words", "refuse", "down", "missing"]
    json_, fenced, bare, words, refuse, down, missing = grade_cases(server.url, config, cases)
    assert json_.score == 0.7 and not json_.errors.any
    assert json_.token_usage == 25
    assert json_.usage_per_model == {
        "judge-model": {
            "prompt_tokens": 20,
            "completion_tokens": 5,
            "total_tokens": 25,
            "cached_tokens": 0,
        }
    }
    assert fenced.score == 2.0  # 4 clipped to the range's top
    assert bare.score == 0.25
    assert words.score == 0.0 and words.errors.model_grader_parse_error
    assert refuse.score == 0.0 and refuse.errors.model_grader_refusal_error
    assert down.score == 0.0 and down.errors.model_grader_server_error
    assert "503" in down.errors.model_grader_server_error_details and down.retries == 1
    assert missing.errors.model_grader_parse_error  # content None is not a number
    request = server.requests[0]
    assert request["model"] == "judge-model" and request["temperature"] == 0.0
    assert request["max_completion_tokens"] == 64 and request["seed"] == 1
    assert any(m["content"].startswith("Answer: 42\nCASE:") for m in request["messages"])
    assert server.headers[0]["authorization"] == "Bearer sk-judge"


def test_label_model(loopback: Any) -> None:
    server = loopback(judge_server)
    good, bad, other = grade_cases(
        server.url, label_model(), ["label_good", "label_bare", "label_other"]
    )
    assert good.score == 1.0 and not good.errors.any
    assert bad.score == 0.0 and not bad.errors.any
    assert other.score == 0.0 and other.errors.model_grader_parse_error


def test_unknown_variable_in_a_judge_prompt(loopback: Any) -> None:
    server = loopback(judge_server)
    config = score_model()
    config["input"][0]["content"] = "{{ item.nothing }}"
    (result,) = grade_cases(server.url, config, ["json"])
    assert result.errors.invalid_variable_error and not server.requests
