"""The streaming JSONL checker gives the same verdict however the bytes are chunked."""

from __future__ import annotations

import json

import pytest

from openrft.datasets import DatasetKind, JsonlChecker
from openrft.errors import InvalidRequest

RL = {
    "messages": [{"role": "system", "content": "tutor"}, {"role": "user", "content": "2+2="}],
    "reference_answer": {"final_answer": "4"},
    "task_id": 7,
}


def check(data: bytes, chunk: int):
    checker = JsonlChecker(max_line_bytes=1024)
    for i in range(0, len(data), chunk):
        checker.feed(data[i : i + chunk])
    return checker.finish()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunking_does_not_matter(chunk: int) -> None:
    line = json.dumps(RL, ensure_ascii=False).replace("tutor", "tütor").encode()
    summary = check(line + b"\r\n" + line, chunk)
    assert summary.kind is DatasetKind.REINFORCEMENT
    assert summary.examples == 2
    assert summary.item_fields == {"reference_answer", "task_id"}


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_first_bad_line_is_named(chunk: int) -> None:
    data = (json.dumps(RL) + "\n") * 4 + "42\n"
    with pytest.raises(InvalidRequest, match="Line 5 is not a dictionary"):
        check(data.encode(), chunk)


def test_long_line_without_newline_fails_early() -> None:
    checker = JsonlChecker(max_line_bytes=100)
    with pytest.raises(InvalidRequest, match="Line 1 is longer than 100 bytes"):
        checker.feed(b"x" * 101)
