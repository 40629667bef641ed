"""The async side of a streamed request: an iterator of ChoiceDelta for the HTTP layer."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType

from ._params import ChoiceDelta, GenerationResult, Usage

__all__ = ["AsyncSink", "TokenStream", "deliver_batched"]


class AsyncSink:
    """A sink the scheduler thread can call: it hands items to `queue` on `loop`'s thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
        self.loop = loop
        self.queue = queue

    def __call__(self, item: object) -> None:
        self.loop.call_soon_threadsafe(
            self.queue.put_nowait, item
        )  # RuntimeError once the loop closed


def deliver_batched(items: list[tuple[AsyncSink, object]]) -> list[AsyncSink]:
    """Deliver many items with one wake-up per event loop; return the sinks whose loop is gone.

    One `call_soon_threadsafe` per stream per step would cost a self-pipe write and
    a loop wake-up each: at 32 streams that, not the model, bounds the step rate.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[AsyncSink, object]]] = {}
    for sink, item in items:
        by_loop.setdefault(sink.loop, []).append((sink, item))
    dead: list[AsyncSink] = []
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, batch)
        except RuntimeError:
            dead.extend(sink for sink, _ in batch)
    return dead


def _put_all(batch: list[tuple[AsyncSink, object]]) -> None:
    for sink, item in batch:
        sink.queue.put_nowait(item)


class TokenStream:
    """Deltas of one request, in order, across its choices (interleaved by `index`).

    Iterate with `async for`; `usage` and `result` are set once it is exhausted.
    Closing it early (`aclose()`, leaving `async with`, cancelling the task that
    awaits it, or dropping it) cancels the request and frees its batch rows.
    """

    def __init__(self, *, queue: asyncio.Queue[object], cancel: Callable[[], None]) -> None:
        self._queue = queue
        self._cancel = cancel
        self._buffer: deque[ChoiceDelta] = deque()
        self.result: GenerationResult | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, cancel)

    @property
    def usage(self) -> Usage | None:
        return self.result.usage if self.result is not None else None

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> ChoiceDelta:
        while not self._buffer:
            if self.result is not None or self._closed:
                raise StopAsyncIteration
            try:
                item = await self._queue.get()
            except asyncio.CancelledError:
                self.cancel()
                raise
            if isinstance(item, BaseException):
                self._finish()
                raise item
            if isinstance(item, GenerationResult):
                self.result = item
                self._finish()
            else:
                assert isinstance(item, list), f"unexpected stream item {item!r}"
                self._buffer.extend(item)
        return self._buffer.popleft()

    def cancel(self) -> None:
        """Stop generating (no-op once finished)."""
        if not self._closed:
            self._closed = True
            self._finalizer.detach()
            self._cancel()

    async def aclose(self) -> None:
        self.cancel()

    async def __aenter__(self) -> TokenStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def _finish(self) -> None:
        self._closed = True
        self._finalizer.detach()
