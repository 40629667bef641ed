"""The scheduler: queue, leases, executors, crash recovery; the retention sweep."""

from openrft.jobs._executor import Executor, Finished, LocalExecutor
from openrft.jobs._ray_executor import RayExecutor
from openrft.jobs._retention import RetentionSweeper
from openrft.jobs._scheduler import Scheduler

__all__ = [
    "Executor",
    "Finished",
    "LocalExecutor",
    "RayExecutor",
    "RetentionSweeper",
    "Scheduler",
]
