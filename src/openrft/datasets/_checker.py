"""Streaming check of a fine-tuning JSONL file: every line, without holding the file.

`JsonlChecker.feed` takes bytes as they arrive from the network; the first bad
line raises `InvalidRequest` naming the line and the problem, with the wording
of OpenAI's upload errors ("Line 3 is not a dictionary ...").
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, NoReturn

from openrft.datasets._messages import message_problem
from openrft.errors import InvalidRequest

__all__ = ["DatasetKind", "DatasetSummary", "JsonlChecker", "check_example"]

PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")


class DatasetKind(enum.StrEnum):
    """What a fine-tuning file trains: it decides which methods may use it."""

    SUPERVISED = "supervised"
    REINFORCEMENT = "reinforcement"
    PREFERENCE = "preference"


@dataclass
class DatasetSummary:
    kind: DatasetKind | None = None
    examples: int = 0
    bytes: int = 0
    item_fields: set[str] = field(default_factory=set)


def check_example(example: Any) -> DatasetKind:
    """Return the kind of one parsed line, or raise ValueError saying what is wrong."""
    if not isinstance(example, dict):
        raise ValueError("is not a dictionary")
    if all(k in example for k in PREFERENCE_KEYS):
        return _check_preference(example)
    if "messages" not in example:
        raise ValueError("is missing the key 'messages'")
    messages = example["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("has 'messages' that is not a non-empty list")
    for i, message in enumerate(messages):
        problem = message_problem(message, i)
        if problem:
            raise ValueError(f"has an invalid message: {problem}")
    last = messages[-1]["role"]
    if last == "assistant":
        return DatasetKind.SUPERVISED
    if last in ("user", "developer"):
        return DatasetKind.REINFORCEMENT
    raise ValueError(
        f"ends with a {last!r} message: a supervised example ends with an assistant "
        "message, a reinforcement example with a user or developer message"
    )


def _check_preference(example: dict[str, Any]) -> DatasetKind:
    prompt = example["input"]
    if not isinstance(prompt, dict) or not isinstance(prompt.get("messages"), list):
        raise ValueError("has 'input' without a 'messages' list")
    for i, message in enumerate(prompt["messages"]):
        problem = message_problem(message, i)
        if problem:
            raise ValueError(f"has an invalid input message: {problem}")
    for key in PREFERENCE_KEYS[1:]:
        output = example[key]
        if not isinstance(output, list) or not output:
            raise ValueError(f"has '{key}' that is not a non-empty list of assistant messages")
    return DatasetKind.PREFERENCE


class JsonlChecker:
    """Feed bytes in any chunking; `finish()` returns a summary or raises InvalidRequest."""

    def __init__(self, *, max_line_bytes: int) -> None:
        self._max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._line_no = 0
        self.summary = DatasetSummary()

    def feed(self, chunk: bytes) -> None:
        self.summary.bytes += len(chunk)
        self._pending += chunk
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            self._check_line(line)
        if len(self._pending) > self._max_line_bytes:
            self._fail(f"Line {self._line_no + 1} is longer than {self._max_line_bytes} bytes.")

    def finish(self) -> DatasetSummary:
        if self._pending:
            self._check_line(bytes(self._pending))
            self._pending.clear()
        if self.summary.examples == 0:
            self._fail("The file is empty: a fine-tuning file needs at least one JSONL example.")
        return self.summary

    def _check_line(self, raw: bytes) -> None:
        self._line_no += 1
        n = self._line_no
        if len(raw) > self._max_line_bytes:
            self._fail(f"Line {n} is longer than {self._max_line_bytes} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._fail(f"Line {n} is not valid UTF-8 (byte {exc.start} of the line).")
        if not text.strip():
            return  # blank lines (a trailing newline, CRLF endings) are tolerated
        try:
            example = json.loads(text)
        except json.JSONDecodeError:
            self._fail(
                "Expected file to have JSONL format, where every line is a JSON dictionary. "
                f"Line {n} is not a dictionary (HINT: line starts with: {text[:4]!r}...)."
            )
        try:
            kind = check_example(example)
        except ValueError as exc:
            self._fail(f"Line {n} {exc}.")
        summary = self.summary
        if summary.kind is not None and kind is not summary.kind:
            self._fail(
                f"Line {n} is a {kind.value} example, but the lines before it are "
                f"{summary.kind.value} examples: a file holds one kind."
            )
        summary.kind = kind
        summary.examples += 1
        summary.item_fields.update(k for k in example if k != "messages")

    def _fail(self, message: str) -> NoReturn:
        raise InvalidRequest(message, param="file", code="invalid_file_format")
