"""Operations endpoints: `/healthz`, `/readyz` and Prometheus `/metrics`."""

from __future__ import annotations

import shutil

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import run_cli


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
