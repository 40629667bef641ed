"""What grader runners share inside one GradingService."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from ._config import GraderSettings
from ._http import CallStats
from ._python_pool import SandboxPool
from ._similarity import Embedder

__all__ = ["GradingContext"]


@dataclass
class GradingContext:
    settings: GraderSettings
    client: httpx.AsyncClient
    limit: asyncio.Semaphore
    stats: CallStats
    pool: SandboxPool
    embedder: Embedder | None
    lambda_client: Any  # a boto3 Lambda client, or None to build one per region
