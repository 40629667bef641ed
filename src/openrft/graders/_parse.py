"""`parse_grader`: OpenAI's grader schemas plus Bedrock's lambda/endpoint.

Every refusal is an InvalidRequest whose `param` names the bad field, e.g.
`grader.graders.accuracy.operation` [reference §3].
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Callable
from typing import Any

from openrft.errors import InvalidRequest

from ._config import GraderSettings
from ._formula import FormulaSyntaxError, parse_formula
from ._outbound import check_url
from ._parse_inputs import check_keys, parse_messages, parse_sampling_params, require
from ._spec import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    RemoteGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)

__all__ = ["parse_grader"]

STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY_METRICS = (
    "cosine", "fuzzy_match", "bleu", "gleu", "meteor",
    "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l",
)  # fmt: skip
_ARN = re.compile(r"^arn:aws[\w-]*:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+(:[\w$-]+)?$")
_KEY = re.compile(r"^[A-Za-z_]\w*$")

_Parser = Callable[[dict[str, Any], str, GraderSettings], Grader]


def _string_check(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    check_keys(config, {"type", "name", "input", "reference", "operation"}, param)
    operation = require(config, "operation", str, param)
    if operation not in STRING_OPERATIONS:
        raise InvalidRequest(
            f"{param}.operation must be one of {', '.join(STRING_OPERATIONS)}, got {operation!r}",
            param=f"{param}.operation",
        )
    return StringCheckGrader(
        name=require(config, "name", str, param),
        input=require(config, "input", str, param),
        reference=require(config, "reference", str, param),
        operation=operation,
        config=config,
    )


def _text_similarity(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    allowed = {"type", "name", "input", "reference", "evaluation_metric", "pass_threshold"}
    check_keys(config, allowed, param)
    metric = require(config, "evaluation_metric", str, param)
    if metric not in SIMILARITY_METRICS:
        raise InvalidRequest(
            f"{param}.evaluation_metric must be one of {', '.join(SIMILARITY_METRICS)}",
            param=f"{param}.evaluation_metric",
        )
    if metric == "cosine" and settings.embedding_model is None:
        # Decision 9: no hosted embeddings; cosine needs a local model.
        raise InvalidRequest(
            "evaluation_metric 'cosine' needs a local embedding model, and this server "
            "has none configured",
            param=f"{param}.evaluation_metric",
        )
    return TextSimilarityGrader(
        name=require(config, "name", str, param),
        input=require(config, "input", str, param),
        reference=require(config, "reference", str, param),
        evaluation_metric=metric,
        config=config,
    )


def _judge_url(settings: GraderSettings, param: str) -> None:
    if settings.judge_base_url is None:
        raise InvalidRequest(
            "model graders need a judge endpoint, and this server has none configured",
            param=f"{param}.model",
        )
    check_url(settings.judge_base_url, settings, param=f"{param}.model")


def _score_model(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    allowed = {"type", "name", "model", "input", "range", "sampling_params", "pass_threshold"}
    check_keys(config, allowed, param)
    bounds = config.get("range", [0, 1])
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
        or not bounds[0] < bounds[1]
    ):
        raise InvalidRequest(
            f"{param}.range must be two increasing numbers", param=f"{param}.range"
        )
    grader = ScoreModelGrader(
        name=require(config, "name", str, param),
        model=require(config, "model", str, param),
        input=parse_messages(require(config, "input", list, param), f"{param}.input"),
        range=(float(bounds[0]), float(bounds[1])),
        sampling_params=parse_sampling_params(
            config.get("sampling_params"), f"{param}.sampling_params"
        ),
        config=config,
    )
    _judge_url(settings, param)
    return grader


def _label_model(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    check_keys(config, {"type", "name", "model", "input", "labels", "passing_labels"}, param)
    labels = require(config, "labels", list, param)
    passing = require(config, "passing_labels", list, param)
    if not labels or not all(isinstance(label, str) for label in labels):
        raise InvalidRequest(
            f"{param}.labels must be a non-empty list of strings", param=f"{param}.labels"
        )
    if not passing or not set(passing) <= set(labels):
        raise InvalidRequest(
            f"{param}.passing_labels must be a non-empty subset of labels",
            param=f"{param}.passing_labels",
        )
    grader = LabelModelGrader(
        name=require(config, "name", str, param),
        model=require(config, "model", str, param),
        input=parse_messages(require(config, "input", list, param), f"{param}.input"),
        labels=tuple(labels),
        passing_labels=tuple(passing),
        config=config,
    )
    _judge_url(settings, param)
    return grader


def _check_grade_function(source: str, param: str) -> None:
    """`source` must define `grade(sample, item)` at top level [GRADERS-GUIDE]."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InvalidRequest(
            f"{param}.source does not compile: {exc}", param=f"{param}.source"
        ) from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "grade":
            args = node.args
            positional = len(args.posonlyargs) + len(args.args)
            if positional == 2 or (positional < 2 and args.vararg is not None):
                return
            raise InvalidRequest(
                f"{param}.source: grade must take exactly two arguments (sample, item)",
                param=f"{param}.source",
            )
    raise InvalidRequest(f"{param}.source must define grade(sample, item)", param=f"{param}.source")


def _python(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    check_keys(config, {"type", "name", "source", "image_tag"}, param)
    source = require(config, "source", str, param)
    if len(source.encode()) > settings.python_source_max_bytes:
        raise InvalidRequest(
            f"{param}.source is larger than {settings.python_source_max_bytes} bytes",
            param=f"{param}.source",
        )
    if "image_tag" in config:
        require(config, "image_tag", str, param)
    _check_grade_function(source, param)
    return PythonGrader(name=require(config, "name", str, param), source=source, config=config)


def _multi(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    check_keys(config, {"type", "name", "graders", "calculate_output"}, param)
    graders_config = require(config, "graders", dict, param)
    if isinstance(graders_config.get("type"), str):
        # The SDK types `graders` as one grader; accept it under its own name.
        graders_config = {graders_config.get("name", "grader"): graders_config}
    if not graders_config:
        raise InvalidRequest(f"{param}.graders must not be empty", param=f"{param}.graders")
    graders: dict[str, Grader] = {}
    for key, sub in graders_config.items():
        where = f"{param}.graders.{key}"
        if not _KEY.match(key):
            raise InvalidRequest(f"{where}: grader keys must be identifiers", param=where)
        if isinstance(sub, dict) and sub.get("type") == "multi":
            raise InvalidRequest(
                "a multi grader cannot contain a multi grader", param=f"{where}.type"
            )
        graders[key] = parse_grader(sub, param=where, settings=settings)
    text = require(config, "calculate_output", str, param)
    try:
        formula = parse_formula(text, set(graders))
    except FormulaSyntaxError as exc:
        raise InvalidRequest(
            f"{param}.calculate_output: {exc}", param=f"{param}.calculate_output"
        ) from None
    name = require(config, "name", str, param)
    return MultiGrader(name=name, graders=graders, formula=formula, config=config)


def _remote_target(target: str, where: str, settings: GraderSettings) -> None:
    if target.startswith("arn:"):
        if not _ARN.match(target):
            raise InvalidRequest(f"{where} is not a Lambda function ARN", param=where)
        if importlib.util.find_spec("boto3") is None:
            raise InvalidRequest(
                "invoking a Lambda ARN needs boto3: install openrft[aws], or give an http(s) URL",
                param=where,
            )
        return
    check_url(target, settings, param=where)


def _remote(config: dict[str, Any], param: str, settings: GraderSettings) -> Grader:
    kind = config["type"]
    if kind == "lambda":
        check_keys(config, {"type", "name", "lambda", "headers"}, param)
        spec = require(config, "lambda", dict, param)
        check_keys(spec, {"function"}, f"{param}.lambda")
        target, where = (
            require(spec, "function", str, f"{param}.lambda"),
            f"{param}.lambda.function",
        )
    else:
        check_keys(config, {"type", "name", "url", "headers"}, param)
        target, where = require(config, "url", str, param), f"{param}.url"
    _remote_target(target, where, settings)
    headers = config.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InvalidRequest(f"{param}.headers must map names to strings", param=f"{param}.headers")
    name = require(config, "name", str, param) if "name" in config else kind
    return RemoteGrader(name=name, kind=kind, target=target, headers=headers, config=config)


_PARSERS: dict[str, _Parser] = {
    "string_check": _string_check,
    "text_similarity": _text_similarity,
    "score_model": _score_model,
    "label_model": _label_model,
    "python": _python,
    "multi": _multi,
    "lambda": _remote,
    "endpoint": _remote,
}


def parse_grader(
    config: Any, *, param: str = "grader", settings: GraderSettings | None = None
) -> Grader:
    """Validate a grader config; raises InvalidRequest naming the bad field."""
    if not isinstance(config, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    kind = require(config, "type", str, param)
    if kind not in _PARSERS:
        raise InvalidRequest(
            f"{param}.type must be one of {', '.join(_PARSERS)}, got {kind!r}",
            param=f"{param}.type",
        )
    return _PARSERS[kind](config, param, settings or GraderSettings())
