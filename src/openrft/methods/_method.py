"""The `method` object of a job create request, parsed and checked against the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openrft.errors import InvalidRequest
from openrft.methods._common import parse_model
from openrft.methods._reinforcement import ReinforcementHyperparameters
from openrft.methods._supervised import SupervisedHyperparameters

__all__ = ["MethodSpec", "parse_method"]

# Which file kind (openrft.datasets.DatasetKind value) each method trains on.
FILE_KIND = {"supervised": "supervised", "reinforcement": "reinforcement", "dpo": "preference"}


@dataclass
class MethodSpec:
    type: str
    hyperparameters: SupervisedHyperparameters | ReinforcementHyperparameters
    grader: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @property
    def file_kind(self) -> str:
        return FILE_KIND[self.type]

    def to_json(self) -> dict[str, Any]:
        """The `method` object as jobs echo it."""
        body: dict[str, Any] = {"hyperparameters": self.hyperparameters.model_dump()}
        if self.type == "reinforcement":
            body["grader"] = self.grader
            body["response_format"] = self.response_format
        return {"type": self.type, self.type: body}


def parse_method(
    method: dict[str, Any] | None, hyperparameters: dict[str, Any] | None
) -> MethodSpec:
    """`method` as OpenAI defines it; the deprecated top-level `hyperparameters` mean SFT."""
    if method is None:
        hp = parse_model(SupervisedHyperparameters, hyperparameters, param="hyperparameters")
        return MethodSpec("supervised", hp)
    if not isinstance(method, dict):
        raise InvalidRequest("'method' must be an object.", param="method")
    kind = method.get("type")
    if kind == "dpo":
        raise InvalidRequest(
            "The dpo method is not supported yet: use 'supervised' or 'reinforcement'.",
            param="method.type",
        )
    if kind not in ("supervised", "reinforcement"):
        raise InvalidRequest(
            f"Invalid value for 'method.type': {kind!r}. Expected 'supervised' or 'reinforcement'.",
            param="method.type",
        )
    body = method.get(kind) or {}
    if not isinstance(body, dict):
        raise InvalidRequest(f"'method.{kind}' must be an object.", param=f"method.{kind}")
    param = f"method.{kind}.hyperparameters"
    raw_hp = body.get("hyperparameters")
    if hyperparameters and raw_hp is None:
        raw_hp = hyperparameters
    if kind == "supervised":
        extra = set(body) - {"hyperparameters"}
        if extra:
            raise InvalidRequest(
                f"Unknown parameter: 'method.supervised.{min(extra)}'.",
                param=f"method.supervised.{min(extra)}",
            )
        return MethodSpec(kind, parse_model(SupervisedHyperparameters, raw_hp, param=param))
    extra = set(body) - {"hyperparameters", "grader", "response_format"}
    if extra:
        raise InvalidRequest(
            f"Unknown parameter: 'method.reinforcement.{min(extra)}'.",
            param=f"method.reinforcement.{min(extra)}",
        )
    if not isinstance(body.get("grader"), dict):
        raise InvalidRequest(
            "Missing required parameter: 'method.reinforcement.grader'.",
            param="method.reinforcement.grader",
        )
    hp = parse_model(ReinforcementHyperparameters, raw_hp, param=param)
    return MethodSpec(kind, hp, grader=body["grader"], response_format=body.get("response_format"))


def requested_workers(method: dict[str, Any]) -> int:
    """A stored job method's data-parallel ranks: `num_workers` of a reinforcement job,
    else 1 (read by the scheduler to place ranks and by the worker to start them)."""
    body = method.get(method["type"]) or {}
    return int((body.get("hyperparameters") or {}).get("num_workers", 1))
