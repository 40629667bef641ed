"""Prometheus metrics at `GET /metrics`, in a registry of this app's own.

Request counts and latencies come from a pure ASGI middleware; job counts, queue
depth, served tokens, engine batch sizes and outbound grader calls are read from their
owners at scrape time, so no second copy of that state exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

access = logging.getLogger("openrft.access")

JOB_STATUSES = ("validating_files", "queued", "running", "paused", "succeeded", "failed",
                "cancelled")  # fmt: skip


class _StateCollector:
    """Reads the store, the model server and the grading service when scraped."""

    def __init__(self, *, store: Any, models: Any, grading: Any) -> None:
        self._store, self._models, self._grading = store, models, grading

    def collect(self) -> Iterator[Any]:
        counts = self._store.jobs.count_by_status()
        jobs = GaugeMetricFamily("openrft_jobs", "Fine-tuning jobs by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "openrft_queue_depth", "Jobs waiting for a worker", value=counts.get("queued", 0)
        )
        yield CounterMetricFamily(
            "openrft_generated_tokens", "Completion tokens served by the API's engines",
            value=self._models.generated_tokens,
        )  # fmt: skip
        batches = HistogramMetricFamily(
            "openrft_engine_batch_size", "Rows per forward pass of the serving engines",
            labels=["phase"],
        )  # fmt: skip
        for phase, (buckets, total) in self._models.batch_sizes.snapshot().items():
            batches.add_metric([phase], buckets, total)
        yield batches
        stats = self._grading.stats
        calls = CounterMetricFamily(
            "openrft_grader_calls", "Outbound grader calls (lambda, endpoint, judge)",
            labels=["outcome"],
        )  # fmt: skip
        for outcome in ("calls", "retries", "failures", "timeouts", "server_errors"):
            calls.add_metric([outcome], getattr(stats, outcome))
        yield calls


class Metrics:
    def __init__(self, *, store: Any, models: Any, grading: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "openrft_http_requests", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "openrft_http_request_duration_seconds", "HTTP request latency, to the last byte",
            ["method", "route"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(_StateCollector(store=store, models=models, grading=grading))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not its path: ids would explode
    the label set) and status, times it to the last byte of the body, and writes its
    `openrft.access` log record."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            matched = getattr(scope.get("route"), "path", None)
            route, method = matched or "unmatched", scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            # The access record, inside the request-id middleware so it carries the id.
            access.info(
                "%s %s %d", method, scope["path"], status,
                extra={"method": method, "path": scope["path"], "route": matched,
                       "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )  # fmt: skip
