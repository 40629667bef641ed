"""What every training method shares: pydantic parsing into `InvalidRequest`s, and the
documented defaults that `"auto"` resolves to."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from openrft.errors import InvalidRequest

__all__ = ["Auto", "Strict", "base_learning_rate", "choose_full_fine_tuning", "parse_model"]

Auto = Literal["auto"]
M = TypeVar("M", bound=BaseModel)

# Decision 5: full fine-tuning below ~50M parameters, LoRA (rank 32) above.
FULL_FINE_TUNING_MAX_PARAMS = 50_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_model(cls: type[M], data: Any, *, param: str) -> M:
    """Validate `data` as `cls`; the first problem becomes a 400 naming its full path."""
    try:
        return cls.model_validate(data if data is not None else {})
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        # A union ("auto" or a number) reports one error per branch: for a non-string input
        # the numeric branch's complaint ("must be >= 1") is the useful one.
        if not isinstance(err.get("input"), str):
            numeric = [
                e for e in errors if e["loc"][:1] == err["loc"][:1] and e["type"] != "literal_error"
            ]
            err = numeric[0] if numeric else err
        # Drop the names pydantic gives union branches ("constrained-int", "literal['auto']").
        skip = ("function-", "literal[", "constrained-", "int", "float", "str", "bool")
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(skip))
        full = f"{param}.{loc}" if loc else param
        if err["type"] == "extra_forbidden":
            message = f"Unknown parameter: '{full}'."
        else:
            message = f"Invalid value for '{full}': {err['msg']} (got {err.get('input')!r})."
        raise InvalidRequest(message, param=full) from exc


def choose_full_fine_tuning(setting: str, n_params: int) -> bool:
    if setting == "auto":
        return n_params < FULL_FINE_TUNING_MAX_PARAMS
    return setting == "full"


def base_learning_rate(*, method: str, full: bool, n_params: int) -> float:
    """The learning rate that `learning_rate_multiplier` 1.0 means, by method and model size.

    Tiny models: SFT 1e-3 (calibration.md); GRPO 1e-4 with full fine-tuning, which rose
    steadily from a weak warm-up where 3e-4 first lost reward (measured on this project's
    trainer, single-digit addition from a ~0.25 start, 60 steps). Larger
    models: LoRA 2e-4 (SFT) / 2e-5 (GRPO); full fine-tuning 1e-5 / 1e-6, as TRL uses.
    """
    tiny = n_params < FULL_FINE_TUNING_MAX_PARAMS
    table = {
        ("supervised", True, True): 1e-3,
        ("reinforcement", True, True): 1e-4,
        ("supervised", True, False): 1e-5,
        ("reinforcement", True, False): 1e-6,
        ("supervised", False, True): 2e-4,
        ("reinforcement", False, True): 2e-5,
        ("supervised", False, False): 2e-4,
        ("reinforcement", False, False): 2e-5,
    }
    return table[(method, full, tiny)]
