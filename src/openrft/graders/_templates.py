"""`{{ item.x }}` / `{{ sample.output_json.a[0] }}` substitution [GRADERS-GUIDE].

The only namespaces are `item` and `sample`; a path is dotted names and
`[index]` or `["key"]` steps. A variable that does not resolve raises
`TemplateVariableError` (flag `invalid_variable_error`); reading
`sample.output_json` of a non-JSON sample raises `SampleParseError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._sample import NOT_JSON, Sample

__all__ = ["SampleParseError", "TemplateVariableError", "render", "resolve"]

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_STEP = re.compile(r"""\.([A-Za-z_][\w-]*)|\[\s*(-?\d+)\s*\]|\[\s*(["'])(.*?)\3\s*\]""")
_HEAD = re.compile(r"([A-Za-z_]\w*)")


class TemplateVariableError(LookupError):
    """A `{{ ... }}` names something the sample or item does not have."""


class SampleParseError(ValueError):
    """The template reads `sample.output_json` but the sample is not JSON."""


def _steps(path: str) -> tuple[str, list[str | int]]:
    head = _HEAD.match(path)
    if head is None:
        raise TemplateVariableError(f"bad template variable {path!r}")
    steps: list[str | int] = []
    pos = head.end()
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise TemplateVariableError(f"bad template variable {path!r}")
        name, index, _, key = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else key))
        pos = match.end()
    return head.group(1), steps


def _step(value: Any, step: str | int, path: str) -> Any:
    try:
        if isinstance(step, int):
            if not isinstance(value, list | tuple):
                raise TypeError
            return value[step]
        if not isinstance(value, dict):
            raise TypeError
        return value[step]
    except (KeyError, IndexError, TypeError):
        raise TemplateVariableError(f"template variable {path!r} is not defined") from None


def resolve(path: str, sample: Sample, item: dict[str, Any]) -> Any:
    """The value a template path names."""
    namespace, steps = _steps(path)
    if namespace == "item":
        value: Any = item
    elif namespace == "sample":
        if steps and steps[0] == "output_json" and sample.output_json is NOT_JSON:
            raise SampleParseError("sample.output_json is used but the sample is not valid JSON")
        value = sample.as_dict()
    else:
        raise TemplateVariableError(f"unknown template namespace {namespace!r} (item or sample)")
    for step in steps:
        value = _step(value, step, path)
    return value


def _text(value: Any) -> str:
    # Strings go in as they are; anything else as JSON, so a dict reference
    # answer reaches a judge in a form it can read.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(template: str, sample: Sample, item: dict[str, Any]) -> str:
    """Substitute every `{{ ... }}` of `template`."""
    return _PLACEHOLDER.sub(lambda m: _text(resolve(m.group(1), sample, item)), template)
