"""`openrft models export MODEL DIR [--merged]`: a model as a Hugging Face folder, from a server.

Downloads `GET /v1/models/{MODEL}/content` (a tar) and unpacks it as it arrives into a
hidden folder beside DIR, renamed to DIR once complete, so a failed download leaves
nothing half-written behind.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from openrft.cli._client import _client_options, openai_client

__all__ = ["add_export_command"]


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (an HTTP response body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def _refuse_non_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        sys.exit(f"openrft: {target} exists and is not an empty folder; choose a new folder")


def _error_message(response) -> str:  # noqa: ANN001 - an httpx.Response
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def cmd_models_export(args: argparse.Namespace) -> int:
    import httpx

    target = Path(args.dir).expanduser()
    _refuse_non_empty(target)
    client = openai_client(args)
    url = f"{str(client.base_url).rstrip('/')}/models/{quote(args.model, safe='')}/content"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with httpx.stream(
            "GET",
            url,
            params={"merged": "true"} if args.merged else None,
            headers={"Authorization": f"Bearer {client.api_key}"},
            # Merging a big model before the first byte can take minutes.
            timeout=httpx.Timeout(30.0, read=None),
        ) as response:
            if response.status_code != 200:
                response.read()
                sys.exit(f"openrft: {_error_message(response)}")
            kind = response.headers.get("x-openrft-export", "full")
            reader = io.BufferedReader(_ChunkReader(response.iter_bytes()), buffer_size=1 << 20)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                # "data": plain files only, nothing outside the folder (PEP 706).
                tar.extractall(partial, filter="data")
        _refuse_non_empty(target)  # something may have been written there meanwhile
        if target.exists():
            target.rmdir()
        partial.rename(target)
    except httpx.HTTPError as exc:
        sys.exit(f"openrft: the download from {url} failed: {exc}")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    what = "LoRA adapter" if kind == "adapter" else "full weights"
    print(f"{args.model}: {what} written to {target}")
    return 0


def add_export_command(models: argparse._SubParsersAction) -> None:
    """Add `export` beside the admin commands under `openrft models`."""
    export = models.add_parser(
        "export",
        parents=[_client_options()],
        help="download a model as a Hugging Face folder (from a running server)",
    )
    export.add_argument("model", help="a fine-tuned model, checkpoint or base model id")
    export.add_argument("dir", help="a new or empty folder to write")
    export.add_argument(
        "--merged",
        action="store_true",
        help="merge a LoRA adapter into full weights (default: the adapter folder)",
    )
    export.set_defaults(func=cmd_models_export)
