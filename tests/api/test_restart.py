"""State survives restarts; a killed upload leaves nothing behind."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time

import httpx
import openai
import pytest

LINE = json.dumps({"messages": [{"role": "user", "content": "1+1="}], "reference_answer": "2"})


def test_objects_survive_a_restart(fresh_server) -> None:
    fresh_server.start()
    client = fresh_server.client()
    created = client.files.create(file=("a.jsonl", io.BytesIO(LINE.encode())), purpose="fine-tune")
    other_key = fresh_server.new_key("second")
    fresh_server.stop()

    fresh_server.start()
    client = fresh_server.client()
    assert client.files.retrieve(created.id).bytes == len(LINE)
    assert client.files.content(created.id).read() == LINE.encode()
    # Keys created before the restart still authenticate, and still see only their project.
    with pytest.raises(openai.NotFoundError):
        fresh_server.client(other_key).files.retrieve(created.id)


def test_kill_during_large_upload_leaves_no_file_and_no_blob(fresh_server) -> None:
    fresh_server.start()
    boundary = "openrft-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    chunk = (LINE + "\n").encode() * 2000
    sent = threading.Event()

    def body():
        yield head
        for i in range(10_000):  # far more than we let it send
            yield chunk
            if i == 20:
                sent.set()
            time.sleep(0.005)

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{fresh_server.base_url}/files",
                content=body(),
                headers={
                    "Authorization": f"Bearer {fresh_server.api_key}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
                timeout=60,
            )

    uploader = threading.Thread(target=post, daemon=True)
    uploader.start()
    assert sent.wait(30)
    tmp = fresh_server.data_dir / "blobs" / "tmp"
    assert any(p.stat().st_size > 0 for p in tmp.iterdir())  # bytes were landing when we killed it
    fresh_server.kill()
    uploader.join(30)

    fresh_server.start()
    assert fresh_server.client().files.list().data == []
    blobs = [p for p in (fresh_server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert blobs == []
