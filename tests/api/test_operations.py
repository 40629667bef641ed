"""Operations endpoints: `/healthz`, `/readyz` and Prometheus `/metrics`; JSON logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai.types.chat import ChatCompletion
from prometheus_client.parser import text_string_to_metric_families

from support import free_port, run_cli


def _scrape(server) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{server.root_url}/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_move_with_traffic(server, client) -> None:
    key = ("openrft_http_requests_total", (("method", "GET"), ("route", "/v1/files"), ("status", "200")))  # fmt: skip
    before = _scrape(server).get(key, 0.0)
    for _ in range(3):
        client.files.list()
    after = _scrape(server)
    assert after[key] == before + 3
    assert any(name == "openrft_http_request_duration_seconds_count" for name, _ in after)
    assert ("openrft_jobs", (("status", "queued"),)) in after
    assert ("openrft_queue_depth", ()) in after
    assert ("openrft_grader_calls_total", (("outcome", "calls"),)) in after
    assert ("openrft_generated_tokens_total", ()) in after


def test_readyz_follows_the_blob_store(fresh_server) -> None:
    fresh_server.start()
    ready = httpx.get(f"{fresh_server.root_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "blob_store": True}}
    shutil.rmtree(fresh_server.data_dir / "blobs")
    unready = httpx.get(f"{fresh_server.root_url}/readyz")
    assert unready.status_code == 503 and unready.json()["checks"]["blob_store"] is False
    (fresh_server.data_dir / "blobs").mkdir()
    assert httpx.get(f"{fresh_server.root_url}/readyz").status_code == 200
    assert httpx.get(f"{fresh_server.root_url}/healthz").json() == {"status": "ok"}


def test_db_upgrade_by_hand(tmp_path) -> None:
    assert "newest migration" in run_cli("db", "upgrade", data_dir=tmp_path / "d")


def test_engine_batch_sizes(serving_server) -> None:
    """Concurrent requests share forward passes, and `/metrics` shows it."""
    count = ("openrft_engine_batch_size_count", (("phase", "decode"),))
    single = ("openrft_engine_batch_size_bucket", (("le", "1.0"), ("phase", "decode")))
    before = _scrape(serving_server)
    client = serving_server.client()

    def ask(i: int) -> ChatCompletion:
        return client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": f"{i}+1="}], n=4, max_tokens=8
        )

    with ThreadPoolExecutor(4) as pool:
        for completion in pool.map(ask, range(4)):
            ChatCompletion.model_validate(completion.model_dump())
    after = _scrape(serving_server)
    passes = after[count] - before.get(count, 0.0)
    assert passes > 0
    # n=4 puts four rows in every decode pass of a request: not all passes are single rows.
    assert after[single] - before.get(single, 0.0) < passes
    assert after[("openrft_engine_batch_size_sum", (("phase", "decode"),))] > passes


# It corrupts the SQLite file under a running server; PostgreSQL keeps no file there.
@pytest.mark.parametrize("fresh_server", ["sqlite"], indirect=True)
def test_readyz_follows_the_database(fresh_server) -> None:
    fresh_server.start()
    assert httpx.get(f"{fresh_server.root_url}/readyz").status_code == 200
    db = fresh_server.data_dir / "openrft.db"
    db.write_bytes(b"not a database" * 1000)  # a disk that returned garbage
    for journal in ("openrft.db-wal", "openrft.db-shm"):  # or recent pages would still answer
        (fresh_server.data_dir / journal).unlink(missing_ok=True)
    unready = httpx.get(f"{fresh_server.root_url}/readyz")
    assert unready.status_code == 503 and unready.json()["checks"]["database"] is False


def test_json_logs_carry_the_request_id(tmp_path) -> None:
    data_dir = tmp_path / "data"
    run_cli("models", "init", "tiny", data_dir=data_dir)
    port = free_port()
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "openrft.cli", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--log-format", "json", "--log-level", "info"],
            env={**os.environ, "OPENRFT_API_KEY": "sk-logs"},
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        headers = {"Authorization": "Bearer sk-logs"}
        chat = httpx.post(
            f"{base}/v1/chat/completions", headers=headers, timeout=60,
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )  # fmt: skip
        assert chat.status_code == 200
        missing = httpx.get(f"{base}/v1/files/file-nope", headers=headers)
        assert missing.status_code == 404
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    records = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    by_request: dict[str, list[dict]] = {}
    for r in records:
        by_request.setdefault(r.get("request_id", ""), []).append(r)
    chat_records = by_request[chat.headers["x-request-id"]]
    # The model load happened inside the chat request: its log line carries that request's id.
    assert any(r["message"].startswith("loaded ") for r in chat_records)
    access = [r for r in chat_records if r["logger"] == "openrft.access"]
    assert access and access[0]["status"] == 200 and access[0]["route"] == "/v1/chat/completions"
    (miss,) = by_request[missing.headers["x-request-id"]]
    assert miss["status"] == 404 and miss["path"] == "/v1/files/file-nope"
