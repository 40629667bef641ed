"""`/v1/responses` through the official SDK: plain, streamed (every event validated), the
stream helper, `instructions`, `text.format`, and errors."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)

ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TAIL = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def test_response_with_instructions(client) -> None:
    r = client.responses.create(
        model="tiny", input="Hello", instructions="Answer briefly.", max_output_tokens=8
    )
    Response.model_validate(r.model_dump(by_alias=True))
    assert r.object == "response" and r.id.startswith("resp_") and r.instructions
    assert r.status in ("completed", "incomplete") and r.max_output_tokens == 8
    if r.status == "incomplete":
        assert r.incomplete_details and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage and r.usage.output_tokens <= 8
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.input_tokens_details.cache_write_tokens == 0
    # The instructions are part of the prompt.
    plain = client.responses.create(model="tiny", input="Hello", max_output_tokens=8)
    assert r.usage.input_tokens > plain.usage.input_tokens
    assert isinstance(r.output_text, str)


def test_response_input_as_messages(client) -> None:
    messages = [
        {"role": "user", "content": "2+2="},
        {"role": "assistant", "content": "4"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "3+3="}]},
    ]
    r = client.responses.create(model="tiny", input=messages, max_output_tokens=4)
    Response.model_validate(r.model_dump(by_alias=True))
    assert r.output[0].type == "message" and r.output[0].role == "assistant"


def test_streamed_events_in_order(client) -> None:
    events = list(
        client.responses.create(model="tiny", input="Hi", max_output_tokens=6, stream=True)
    )
    for e in events:
        EVENTS.validate_python(e.model_dump(by_alias=True))
    types = [e.type for e in events]
    assert types[:4] == ORDER and types[-4:-1] == TAIL
    assert types[-1] in ("response.completed", "response.incomplete")
    assert set(types[4:-4]) <= {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-4]
    assert done.text == deltas and done.logprobs == []
    final = events[-1].response
    Response.model_validate(final.model_dump(by_alias=True))
    assert final.output_text == deltas and final.usage and final.usage.output_tokens <= 6


FLAG = {
    "type": "json_schema",
    "name": "flag",
    "schema": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_stream_helper(client) -> None:
    # The helper's final response needs `response.completed` (it ignores `.incomplete`):
    # a short schema makes the random model stop well inside the limit.
    with client.responses.stream(
        model="tiny", input="Hi", max_output_tokens=30, text={"format": FLAG}
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    Response.model_validate(final.model_dump(by_alias=True))
    assert final.status == "completed" and final.output_text == text
    assert isinstance(json.loads(text)["ok"], bool)


def test_text_format_json_schema(client) -> None:
    r = client.responses.create(
        model="tiny", input="ok?", max_output_tokens=30, text={"format": FLAG}
    )
    Response.model_validate(r.model_dump(by_alias=True))
    assert isinstance(json.loads(r.output_text)["ok"], bool)
    assert r.text and r.text.format.type == "json_schema"


def test_response_errors(client) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="missing", input="Hi")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="tiny", input="Hi", temperature=-1)
    assert err.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="tiny", input="x" * 2100, stream=True)
    assert err.value.param == "messages"
