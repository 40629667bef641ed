"""`score_model` and `label_model`: a chat model as the judge.

The judge is any OpenAI-compatible `/v1/chat/completions` (this server's own
models, or an external endpoint in the settings). OpenAI asks its judge for
`{"result": float, "steps": [...]}` [GRADERS-GUIDE]; we ask the same, accept a
bare number too, clip to `range`, and score 0 with `model_grader_parse_error`
when no number comes back.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ._context import GradingContext
from ._http import RemoteCallError, post_json
from ._result import GraderErrors, GradeResult
from ._sample import Sample
from ._spec import LabelModelGrader, ScoreModelGrader
from ._templates import render

__all__ = ["judge"]

_FENCE = re.compile(r"^```\w*\s*|\s*```$")
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_SAMPLING_KEYS = {
    "seed": "seed",
    "top_p": "top_p",
    "temperature": "temperature",
    "max_completions_tokens": "max_completion_tokens",
    "reasoning_effort": "reasoning_effort",
}


def _part(part: dict[str, Any], sample: Sample, item: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": render(part["text"], sample, item)}
    if kind == "input_image":
        image = {
            "url": render(part["image_url"], sample, item),
            "detail": part.get("detail", "auto"),
        }
        return {"type": "image_url", "image_url": image}
    return {"type": "input_audio", "input_audio": part["input_audio"]}


def _content(content: Any, sample: Sample, item: dict[str, Any]) -> Any:
    if isinstance(content, str):
        return render(content, sample, item)
    parts = [_part(p, sample, item) for p in (content if isinstance(content, list) else [content])]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)  # plain text suits every chat server
    return parts


def _messages(
    grader: ScoreModelGrader | LabelModelGrader, sample: Sample, item: dict[str, Any]
) -> list[dict[str, Any]]:
    if isinstance(grader, ScoreModelGrader):
        low, high = grader.range
        rule = (
            f'Reply with only a JSON object {{"result": <a number from {low:g} to {high:g}>, '
            '"steps": [{"description": "...", "conclusion": "..."}]}.'
        )
    else:
        rule = (
            f'Reply with only a JSON object {{"result": "<one of: {", ".join(grader.labels)}>"}}.'
        )
    messages = [
        {"role": m["role"], "content": _content(m["content"], sample, item)} for m in grader.input
    ]
    return [{"role": "system", "content": rule}, *messages]


def _decode(text: str) -> Any:
    text = _FENCE.sub("", text.strip())
    for candidate in (text, *(m.group(0) for m in [_OBJECT.search(text)] if m)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        return value.get("result") if isinstance(value, dict) else value
    return text


def _score(text: str, bounds: tuple[float, float]) -> float | None:
    value = _decode(text)
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    if number is None or not math.isfinite(number):
        return None
    return min(bounds[1], max(bounds[0], number))


def _label(text: str, grader: LabelModelGrader) -> str | None:
    value = _decode(text)
    if not isinstance(value, str):
        return None
    wanted = value.strip().strip("\"'.").casefold()
    return next((label for label in grader.labels if label.casefold() == wanted), None)


def _usage(reply: dict[str, Any]) -> dict[str, int]:
    usage = reply.get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {**{k: int(usage.get(k) or 0) for k in keys}, "cached_tokens": int(cached)}


def _request(
    grader: ScoreModelGrader | LabelModelGrader, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": grader.model, "messages": messages}
    if isinstance(grader, ScoreModelGrader):
        for key, value in grader.sampling_params.items():
            if value is not None:
                body[_SAMPLING_KEYS[key]] = value
    return body


def _verdict(
    grader: ScoreModelGrader | LabelModelGrader, reply: dict[str, Any], retries: int
) -> GradeResult:
    base = {"name": grader.name, "type": grader.type, "retries": retries}
    try:
        choice = reply["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        details = f"judge reply has no choices: {json.dumps(reply)[:300]}"
        return GradeResult(
            **base,
            errors=GraderErrors(
                model_grader_server_error=True, model_grader_server_error_details=details
            ),
        )
    usage = _usage(reply)
    base |= {"token_usage": usage["total_tokens"], "usage_per_model": {grader.model: usage}}
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        return GradeResult(**base, errors=GraderErrors(model_grader_refusal_error=True))
    text = message.get("content") or ""
    if isinstance(grader, ScoreModelGrader):
        score = _score(text, grader.range)
    else:
        label = _label(text, grader)
        score = None if label is None else float(label in grader.passing_labels)
    if score is None:
        return GradeResult(**base, errors=GraderErrors(model_grader_parse_error=True))
    return GradeResult(**base, score=score)


async def judge(
    grader: ScoreModelGrader | LabelModelGrader,
    sample: Sample,
    item: dict[str, Any],
    ctx: GradingContext,
) -> GradeResult:
    """Ask the judge about one sample (template errors are the caller's)."""
    messages = _messages(grader, sample, item)
    base_url = (ctx.settings.judge_base_url or "").rstrip("/")
    headers = (
        {"Authorization": f"Bearer {ctx.settings.judge_api_key}"}
        if ctx.settings.judge_api_key
        else {}
    )
    try:
        async with ctx.limit:
            reply, retries = await post_json(
                ctx.client, f"{base_url}/chat/completions", _request(grader, messages),
                settings=ctx.settings, stats=ctx.stats, headers=headers,
            )  # fmt: skip
    except RemoteCallError as exc:
        errors = GraderErrors(
            model_grader_server_error=True, model_grader_server_error_details=str(exc)
        )
        return GradeResult(name=grader.name, type=grader.type, errors=errors, retries=exc.retries)
    if not isinstance(reply, dict):
        reply = {}
    return _verdict(grader, reply, retries)
