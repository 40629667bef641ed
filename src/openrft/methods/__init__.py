"""Training methods' request shapes: hyperparameters, their checks and their "auto" values."""

from openrft.methods._common import base_learning_rate, choose_full_fine_tuning
from openrft.methods._method import MethodSpec, parse_method, requested_workers
from openrft.methods._reinforcement import ReinforcementHyperparameters, resolve_reinforcement
from openrft.methods._supervised import SupervisedHyperparameters, resolve_supervised

__all__ = [
    "MethodSpec",
    "ReinforcementHyperparameters",
    "SupervisedHyperparameters",
    "base_learning_rate",
    "choose_full_fine_tuning",
    "parse_method",
    "requested_workers",
    "resolve_reinforcement",
    "resolve_supervised",
]
