"""POST JSON with retries, where httpx errors enter the graders (STYLE #3).

Transient failures are retried with exponential backoff: connection errors,
timeouts, 408, 429 (honouring Retry-After) and 5xx. Anything else, or running
out of attempts, raises `RemoteCallError`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx

from ._config import GraderSettings

__all__ = ["CallStats", "RemoteCallError", "post_json"]

_RETRY_STATUS = frozenset({408, 429})


class RemoteCallError(Exception):
    """A reward or judge endpoint gave no usable reply, even after retries."""

    def __init__(self, message: str, *, retries: int) -> None:
        super().__init__(message)
        self.retries = retries


@dataclass
class CallStats:
    """Counters of one GradingService: outbound calls, retries, final failures."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    timeouts: int = 0
    server_errors: int = 0


def _delay(attempt: int, response: httpx.Response | None, settings: GraderSettings) -> float:
    backoff = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2**attempt)
    if response is not None and "retry-after" in response.headers:
        try:
            return min(settings.retry_backoff_max_s, float(response.headers["retry-after"]))
        except ValueError:
            pass
    return backoff * (0.5 + random.random() / 2)  # jitter spreads a thundering herd


async def _attempt(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str], timeout: float
) -> tuple[httpx.Response | None, str]:
    """One POST: (response, "") or (None or a retryable response, why it failed)."""
    try:
        response = await client.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        return None, f"timeout: {type(exc).__name__}"
    except httpx.TransportError as exc:
        return None, f"connection error: {type(exc).__name__}: {exc}"
    if response.status_code >= 500 or response.status_code in _RETRY_STATUS:
        return response, f"HTTP {response.status_code}"
    return response, ""


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    settings: GraderSettings,
    stats: CallStats,
    headers: dict[str, str] | None = None,
) -> tuple[Any, int]:
    """The JSON reply to a POST of `body`, and the number of retries it took."""
    for attempt in range(settings.max_retries + 1):
        stats.calls += 1
        response, why = await _attempt(client, url, body, headers or {}, settings.request_timeout_s)
        if not why and response is not None:
            if response.status_code >= 400:
                stats.failures += 1
                raise RemoteCallError(
                    f"HTTP {response.status_code}: {response.text[:500]}", retries=attempt
                )
            try:
                return response.json(), attempt
            except ValueError:
                stats.failures += 1
                raise RemoteCallError("reply is not JSON", retries=attempt) from None
        stats.timeouts += why.startswith("timeout")
        stats.server_errors += why.startswith("HTTP")
        if attempt == settings.max_retries:
            stats.failures += 1
            raise RemoteCallError(f"{why} after {attempt + 1} attempts", retries=attempt)
        stats.retries += 1
        await asyncio.sleep(_delay(attempt, response, settings))
    raise AssertionError("unreachable")
