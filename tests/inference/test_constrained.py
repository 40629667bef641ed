"""response_format json_schema / json_object: the random model's output always parses and validates."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest

from inference.engine_helpers import request, run
from openrft.errors import InvalidRequest
from openrft.inference import Engine

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "integer", "minimum": 0, "maximum": 99},
        "sure": {"type": "boolean"},
        "unit": {"enum": ["cm", "m", "km"]},
        "note": {"type": "string", "maxLength": 8},
    },
    "required": ["answer", "sure", "unit", "note"],
    "additionalProperties": False,
}


def test_json_schema_output_always_validates(engine: Engine) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "measure", "schema": SCHEMA, "strict": True},
    }

    async def many() -> list[Any]:
        return await asyncio.gather(
            *[
                engine.generate(
                    request(
                        "measure it", temperature=1.0, seed=s, max_tokens=120, response_format=fmt
                    )
                )
                for s in range(8)
            ]
        )

    for result in run(many()):
        choice = result.choices[0]
        assert choice.finish_reason == "stop", choice.text
        jsonschema.validate(json.loads(choice.text), SCHEMA)


def test_json_object_output_parses(engine: Engine) -> None:
    result = run(
        engine.generate(
            request(
                "{",
                temperature=0.7,
                seed=5,
                max_tokens=200,
                response_format={"type": "json_object"},
            )
        )
    )
    choice = result.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.text), dict)
    else:  # unbounded JSON may run out of tokens; what exists is still a valid prefix
        assert choice.text.startswith("{")


def test_invalid_schema_is_a_400(engine: Engine) -> None:
    bad = {
        "type": "json_schema",
        "schema": {"type": "object", "properties": {"a": {"type": "nope"}}},
    }
    with pytest.raises(InvalidRequest) as err:
        run(engine.generate(request("x", response_format=bad)))
    assert err.value.param == "response_format"
