"""`GradingService`: grade batches of samples with any grader, concurrently."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from openrft.errors import InvalidRequest

from ._config import GraderSettings
from ._context import GradingContext
from ._http import CallStats
from ._parse import parse_grader
from ._python_pool import SandboxPool, SandboxUnavailable
from ._remote import grade_remote
from ._result import GradeResult
from ._runners import grade_judge, grade_local, grade_multi, grade_python
from ._sample import Sample
from ._similarity import Embedder
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

__all__ = ["GradingService"]

_RUNNERS: dict[type, Any] = {
    StringCheckGrader: grade_local,
    TextSimilarityGrader: grade_local,
    ScoreModelGrader: grade_judge,
    LabelModelGrader: grade_judge,
    PythonGrader: grade_python,
    RemoteGrader: grade_remote,
}


def _uses_python(grader: Grader) -> bool:
    if isinstance(grader, MultiGrader):
        return any(_uses_python(sub) for sub in grader.graders.values())
    return isinstance(grader, PythonGrader)


class GradingService:
    """Grades samples for the graders API and for training jobs.

    Parameters:
        settings: timeouts, retries, limits, judge endpoint, sandbox hardness.
        http_client: client for lambda/endpoint/judge calls (tests pass one with a
            transport of their own); by default one per event loop is made.
        python_pool: a shared sandbox pool; by default the service owns one.
        embedder: the local embedding model for `cosine` (graders accept `cosine` only
            when `settings.embedding_model` names one).
        lambda_client: a boto3 Lambda client for ARNs (tests pass a stubbed one).
    """

    def __init__(
        self,
        *,
        settings: GraderSettings | None = None,
        http_client: httpx.AsyncClient | None = None,
        python_pool: SandboxPool | None = None,
        embedder: Embedder | None = None,
        lambda_client: Any = None,
    ) -> None:
        self.settings = settings or GraderSettings()
        self.stats = CallStats()
        self._http_client = http_client
        self._owns_pool = python_pool is None
        self._pool = python_pool or SandboxPool(settings=self.settings)
        self._embedder = embedder
        self._lambda_client = lambda_client
        # httpx clients and semaphores belong to one event loop; a trainer may
        # use a fresh loop each step, so each loop gets its own.
        self._contexts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GradingContext] = (
            weakref.WeakKeyDictionary()
        )

    def _context(self) -> GradingContext:
        loop = asyncio.get_running_loop()
        if loop not in self._contexts:
            self._contexts[loop] = GradingContext(
                settings=self.settings,
                client=self._http_client or httpx.AsyncClient(follow_redirects=False),
                limit=asyncio.Semaphore(self.settings.max_concurrency),
                stats=self.stats,
                pool=self._pool,
                embedder=self._embedder,
                lambda_client=self._lambda_client,
            )
        return self._contexts[loop]

    def parse(self, config: Any, *, param: str = "grader") -> Grader:
        """parse_grader with this service's settings."""
        return parse_grader(config, param=param, settings=self.settings)

    async def validate(self, config: Any, *, param: str = "grader") -> Grader:
        """Parse, and refuse python graders where the sandbox cannot run (Decision 7)."""
        grader = self.parse(config, param=param)
        if _uses_python(grader):
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._pool.check)
            except SandboxUnavailable as exc:
                raise InvalidRequest(
                    str(exc), param=f"{param}.type", code="python_sandbox_unavailable"
                ) from None
        return grader

    async def _grade(
        self, grader: Grader, samples: list[Sample], items: list[dict[str, Any]]
    ) -> list[GradeResult]:
        if isinstance(grader, MultiGrader):
            return await grade_multi(grader, samples, items, self._grade)
        return await _RUNNERS[type(grader)](grader, samples, items, self._context())

    async def grade_batch(
        self,
        grader: Grader,
        samples: Sequence[Sample],
        items: Sequence[dict[str, Any]],
        *,
        grade_truncated: bool = False,
    ) -> list[GradeResult]:
        """One result per sample, in order; failures score 0 with flags set.

        A truncated sample (finish_reason "length") is not graded unless
        `grade_truncated`: it scores 0 with `truncated_observation_error`. A trainer
        grades it (on what it wrote, as TRL and Bedrock do) and masks it itself if
        asked. `execution_time` is the wall time of this call.
        """
        if len(samples) != len(items):
            raise ValueError("grade_batch needs one item per sample")
        started = time.perf_counter()
        kept = [i for i, s in enumerate(samples) if grade_truncated or not s.truncated]
        graded = await self._grade(
            grader, [samples[i] for i in kept], [dict(items[i]) for i in kept]
        )
        kind = grader.config.get("type", grader.type)
        results = [
            GradeResult.failed(name=grader.name, type=kind, truncated_observation_error=True)
        ] * len(samples)
        for index, result in zip(kept, graded, strict=True):
            results[index] = result
        elapsed = time.perf_counter() - started
        return [replace(result, execution_time=elapsed) for result in results]

    async def grade(self, grader: Grader, sample: Sample, item: dict[str, Any]) -> GradeResult:
        return (await self.grade_batch(grader, [sample], [item]))[0]

    async def aclose(self) -> None:
        # Only this loop's client can be closed here; those of finished loops
        # went with their connections when the loop closed.
        context = self._contexts.pop(asyncio.get_running_loop(), None)
        if context is not None and self._http_client is None:
            await context.client.aclose()
        self._contexts.clear()
        if self._owns_pool:
            self._pool.close()

    async def __aenter__(self) -> GradingService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
