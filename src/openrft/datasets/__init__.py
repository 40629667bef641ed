"""Training data files: line-by-line checking of fine-tuning JSONL, streaming."""

from openrft.datasets._checker import DatasetKind, DatasetSummary, JsonlChecker, check_example
from openrft.datasets._reader import iter_examples

__all__ = ["DatasetKind", "DatasetSummary", "JsonlChecker", "check_example", "iter_examples"]
