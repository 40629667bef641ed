"""Streaming multipart upload for `POST /v1/files`.

The body is parsed as it arrives (python-multipart's push parser): file bytes go
straight into a blob-store temp file and, for fine-tune files, through the JSONL
checker, so neither memory nor time grows with the file beyond one chunk. The
file object exists only after the last byte is written and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from openrft.datasets import DatasetSummary, JsonlChecker
from openrft.errors import InvalidRequest, OpenRFTError, PayloadTooLarge
from openrft.store import BlobUpload

__all__ = ["ParsedUpload", "receive_upload"]

_MAX_FIELD_BYTES = 4096


@dataclass
class ParsedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    summary: DatasetSummary | None = None
    # The first problem the checker found; it matters only if the purpose is fine-tune.
    file_error: InvalidRequest | None = None


class _Parser:
    """Callbacks for python-multipart; runs in a worker thread, one chunk at a time."""

    def __init__(self, boundary: bytes, writer: BlobUpload, *, max_bytes: int, max_line: int):
        self.out = ParsedUpload()
        self._writer = writer
        self._max_bytes = max_bytes
        self._checker: JsonlChecker | None = JsonlChecker(max_line_bytes=max_line)
        self._header_field = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field_cb,
                "on_header_value": self._header_value_cb,
                "on_headers_finished": self._headers_finished,
            },
        )

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def _part_begin(self) -> None:
        self._headers, self._header_field, self._value = {}, b"", bytearray()

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field = data[start:end].lower()

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_field] = (
            self._headers.get(self._header_field, b"") + data[start:end]
        )

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._is_file = self._name == "file" and filename is not None
        if self._is_file:
            self.out.filename = (filename or b"").decode("utf-8", "replace") or "upload"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self._is_file:
            self._value += chunk
            if len(self._value) > _MAX_FIELD_BYTES:
                raise InvalidRequest(
                    f"The form field '{self._name}' is too long.", param=self._name
                )
            return
        self.out.size += len(chunk)
        if self.out.size > self._max_bytes:
            raise PayloadTooLarge(
                f"File is too large: the limit is {self._max_bytes} bytes.", param="file"
            )
        self._writer.write(chunk)
        if self._checker is not None:
            try:
                self._checker.feed(chunk)
            except InvalidRequest as exc:
                self.out.file_error, self._checker = exc, None

    def _part_end(self) -> None:
        if self._is_file:
            if self._checker is not None:
                try:
                    self.out.summary = self._checker.finish()
                except InvalidRequest as exc:
                    self.out.file_error = exc
                self._checker = None
        elif self._name:
            self.out.fields[self._name] = self._value.decode("utf-8", "replace")
        self._is_file = False


async def receive_upload(
    request: Request, writer: BlobUpload, *, max_bytes: int, max_line_bytes: int
) -> ParsedUpload:
    """Parse the request body into `writer`; on any error the caller aborts the writer."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidRequest(
            "The request must be multipart/form-data with a 'file' part.", param="file"
        )
    declared = int(request.headers.get("content-length") or 0)
    if declared > max_bytes + 1024 * 1024:
        raise PayloadTooLarge(f"File is too large: the limit is {max_bytes} bytes.", param="file")
    parser = _Parser(options[b"boundary"], writer, max_bytes=max_bytes, max_line=max_line_bytes)
    try:
        async for chunk in request.stream():
            await anyio.to_thread.run_sync(parser.write, chunk)
    except OpenRFTError:
        await _drain(request, limit=max_bytes)
        raise
    return parser.out


async def _drain(request: Request, *, limit: int) -> None:
    """Read the rest of the body so the client sees our error, not a broken pipe."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # the client went away: nothing left to tell it
        return
