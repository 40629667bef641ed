"""`text_similarity` metrics, computed offline.

- fuzzy_match: rapidfuzz `fuzz.ratio` / 100 (OpenAI names rapidfuzz).
- bleu: sacrebleu sentence BLEU / 100.
- gleu: nltk `sentence_gleu` on whitespace tokens.
- meteor: nltk `meteor_score` with exact and Porter-stem matches only: no
  WordNet synonyms, since these machines cannot download WordNet (Decision 9).
  Scores can be lower than OpenAI's where a synonym would have matched.
- rouge_1..rouge_5, rouge_l: rouge-score F-measure.
- cosine: cosine of embeddings from a local model, an `Embedder` the service is given
  (the server passes `openrft.inference.TextEmbedder` on `embedding_model`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Protocol

from ._sample import Sample
from ._spec import TextSimilarityGrader
from ._templates import render

__all__ = ["Embedder", "similarity"]


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[list[float]]: ...


class _NoSynonyms:
    """Stands in for nltk's WordNet reader: every word has no synsets."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def _fuzzy(text: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(text, reference) / 100.0


def _bleu(text: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_bleu(text, [reference]).score / 100.0


def _gleu(text: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([reference.split()], text.split()))


def _meteor(text: str, reference: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    return float(meteor_score([reference.split()], text.split(), wordnet=_NoSynonyms()))


@lru_cache(maxsize=8)
def _rouge_scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind])


def _rouge(kind: str) -> Any:
    def score(text: str, reference: str) -> float:
        return float(_rouge_scorer(kind).score(reference, text)[kind].fmeasure)

    return score


_METRICS = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    "meteor": _meteor,
    **{f"rouge_{n}": _rouge(f"rouge{n}") for n in range(1, 6)},
    "rouge_l": _rouge("rougeL"),
}


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def similarity(
    grader: TextSimilarityGrader, sample: Sample, item: dict[str, Any], embedder: Embedder | None
) -> float:
    """The metric between the rendered input and reference, in [0, 1]."""
    text = render(grader.input, sample, item)
    reference = render(grader.reference, sample, item)
    if grader.evaluation_metric == "cosine":
        if embedder is None:
            raise RuntimeError("cosine similarity needs an embedding model")
        first, second = embedder.embed([text, reference])
        return max(0.0, min(1.0, _cosine(first, second)))
    # Clip: sacrebleu can return 100.00000000000004 for identical text.
    return max(0.0, min(1.0, _METRICS[grader.evaluation_metric](text, reference)))
