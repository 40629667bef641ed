"""The retention sweep: a thread in the server that, every `interval` seconds, deletes
expired files (OpenAI's `expires_after`) and rollouts past their project's retention.

Reads already treat an expired file as absent; the sweep is what frees its bytes.
"""

from __future__ import annotations

import logging
import threading

from openrft.store import ProjectLimits, Store

__all__ = ["RetentionSweeper"]

log = logging.getLogger("openrft.jobs")


class RetentionSweeper:
    """Parameters: `store`; `defaults` (the server-wide project limits); `interval` seconds."""

    def __init__(self, *, store: Store, defaults: ProjectLimits, interval: float) -> None:
        self.store = store
        self.defaults = defaults
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openrft-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = self.store.retention.sweep(self.defaults)
            except Exception:  # a busy database is retried at the next sweep
                log.exception("retention sweep failed")
                continue
            if report.files or report.rollouts:
                log.info(
                    "retention: deleted %d expired files, %d old rollouts",
                    report.files,
                    report.rollouts,
                )
