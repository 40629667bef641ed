"""Object ids with OpenAI's live prefixes (`file-…`, `ftjob-…`, `ftevent-…`, `ftckpt_…`)."""

from __future__ import annotations

import secrets
import string
import time

__all__ = ["new_id", "now"]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    """Unix seconds, the unit of every `created_at` in the OpenAI API."""
    return int(time.time())
