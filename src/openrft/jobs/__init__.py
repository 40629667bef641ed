"""The scheduler: queue, leases, executors, crash recovery."""

from openrft.jobs._executor import Executor, Finished, LocalExecutor
from openrft.jobs._scheduler import Scheduler

__all__ = ["Executor", "Finished", "LocalExecutor", "Scheduler"]
