"""A real S3-compatible server for tests: `moto` in server mode, on a loopback port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from support import free_port, stop_group, wait_until_up

__all__ = ["MotoS3"]


class MotoS3:
    """`python -m moto.server` in its own process group, with one bucket made in it."""

    def __init__(self, log_dir: Path, *, bucket: str = "openrft-test") -> None:
        self.bucket = bucket
        self.port = free_port()
        self._log_path = log_dir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The usual AWS variables, pointing at this server (moto takes any keys)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def start(self, timeout: float = 30) -> MotoS3:
        log = self._log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_until_up(
            self.proc,
            f"{self.endpoint}/moto-api/",
            log_path=self._log_path,
            what="moto",
            timeout=timeout,
        )
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_group(self.proc, timeout=10)
        self.proc = None

    def client(self) -> Any:
        """A boto3 S3 client on this server, to look at the bucket independently of openrft."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Every object under `prefix`: key -> size."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=self.bucket)
        return [u["Key"] for u in found.get("Uploads", [])]
