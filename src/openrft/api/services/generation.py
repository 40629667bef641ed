"""Starting a generation for a model id: find the model, check the sampling values,
lease its engine, and hand the request over.

Everything that can fail before the first token fails here (unknown model 404,
bad sampling value or too long a prompt 400, full queue 429), so a streamed
response never starts with an error the client could have had as a status code.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from openrft.api.services.models import Lease, ModelServer
from openrft.errors import InvalidRequest

if TYPE_CHECKING:
    from openrft.inference import (
        ChoiceDelta,
        DeltaStream,
        GenerationRequest,
        GenerationResult,
        Usage,
    )

__all__ = ["LeasedStream", "generate", "open_stream"]

Messages = Sequence[Mapping[str, Any]]


class LeasedStream:
    """The engine's delta stream plus the model lease it holds until it ends or is closed."""

    def __init__(self, stream: DeltaStream, lease: Lease, models: ModelServer) -> None:
        self._stream = stream
        self._lease = lease
        self._models = models
        self._deltas = aiter(stream)
        self._counted = False

    def _count(self) -> None:
        if not self._counted and self._stream.usage is not None:
            self._models.generated_tokens += self._stream.usage.completion_tokens
            self._counted = True

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    def __aiter__(self) -> LeasedStream:
        return self

    async def __anext__(self) -> ChoiceDelta:
        try:
            return await anext(self._deltas)
        except BaseException:
            self._count()
            self._lease.release()
            raise

    async def aclose(self) -> None:
        """Cancel the request if it is still running (a client went away) and free its rows."""
        try:
            await self._stream.aclose()
        finally:
            self._count()
            self._lease.release()


async def _prepare(
    models: ModelServer,
    project: str,
    model_id: str,
    *,
    sampling: dict[str, Any],
    messages: Messages | None,
    prompt: str | Sequence[int] | None,
) -> tuple[GenerationRequest, Lease]:
    row = await models.find(project, model_id)
    from openrft.inference import GenerationRequest, SamplingParams

    request = GenerationRequest(
        messages=messages, prompt=prompt, sampling=SamplingParams(**sampling)
    )
    lease = await models.acquire(row)
    return dataclasses.replace(request, adapter=lease.adapter), lease


@contextlib.contextmanager
def _template_errors() -> Iterator[None]:
    """The model's chat template refused the messages (a role it has no turn for, say)."""
    try:
        yield
    except TemplateError as exc:
        raise InvalidRequest(
            f"The model's chat template rejected messages: {exc}", param="messages"
        ) from exc


async def generate(
    models: ModelServer,
    project: str,
    model_id: str,
    *,
    sampling: dict[str, Any],
    messages: Messages | None = None,
    prompt: str | Sequence[int] | None = None,
) -> GenerationResult:
    """Run one request to the end."""
    request, lease = await _prepare(
        models, project, model_id, sampling=sampling, messages=messages, prompt=prompt
    )
    try:
        with _template_errors():
            result = await lease.engine.generate(request)
        models.generated_tokens += result.usage.completion_tokens
        return result
    finally:
        lease.release()


async def open_stream(
    models: ModelServer,
    project: str,
    model_id: str,
    *,
    sampling: dict[str, Any],
    messages: Messages | None = None,
    prompt: str | Sequence[int] | None = None,
) -> LeasedStream:
    """Start one request and return its deltas; the caller must `aclose()` it."""
    request, lease = await _prepare(
        models, project, model_id, sampling=sampling, messages=messages, prompt=prompt
    )
    try:
        with _template_errors():
            return LeasedStream(lease.engine.stream(request), lease, models)
    except BaseException:
        lease.release()
        raise
