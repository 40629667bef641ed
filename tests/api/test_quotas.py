"""Project quotas: an upload past `max_storage_bytes` and a job past
`max_concurrent_jobs` are refused with 429 `insufficient_quota`, naming the quota,
its limit and the usage."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import openai
import pytest

from support import Server, run_cli, tiny_model_server
from support.jobs import ALL_PAIRS, addition_lines, upload


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No job ever starts (OPENRFT_MAX_CONCURRENT_JOBS=0): created jobs stay queued, which
    # is what holds a concurrent-jobs slot, and no trainer spends the CPU. Every project
    # gets two concurrent jobs unless its own setting says otherwise.
    env = {"OPENRFT_MAX_CONCURRENT_JOBS": "0", "OPENRFT_DEFAULT_MAX_CONCURRENT_JOBS": "2"}
    with tiny_model_server(tmp_path_factory.mktemp("quotas"), env=env) as server:
        yield server


def _client(srv: Server, project: str) -> openai.OpenAI:
    return srv.client(api_key=srv.new_key(project))


def _sft(client: openai.OpenAI, training_file: str):  # noqa: ANN202 - FineTuningJob
    return client.fine_tuning.jobs.create(
        model="tiny",
        training_file=training_file,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 20}}},
    )


def test_storage_quota_refuses_an_upload_that_does_not_fit(srv: Server) -> None:
    client = _client(srv, "small")
    data = addition_lines(ALL_PAIRS, answer=True)
    run_cli("projects", "set", "small", "--max-storage-bytes", str(len(data) + 100),
            data_dir=srv.data_dir)  # fmt: skip
    first = client.files.create(file=("a.jsonl", io.BytesIO(data)), purpose="fine-tune")
    files_before = sorted((srv.data_dir / "blobs" / "files").iterdir())

    with pytest.raises(openai.RateLimitError) as err:
        client.files.create(file=("b.jsonl", io.BytesIO(data)), purpose="fine-tune")
    error = err.value.body
    assert err.value.status_code == 429
    assert error["type"] == "insufficient_quota" and error["code"] == "quota_exceeded"
    assert error["param"] == "file"
    message = error["message"]
    assert "max_storage_bytes" in message and "'small'" in message
    assert f"uses {len(data)} of its {len(data) + 100} bytes" in message
    assert f"upload of {len(data)} bytes" in message
    # Refused means nothing kept: no file object, no blob.
    assert [f.id for f in client.files.list()] == [first.id]
    assert sorted((srv.data_dir / "blobs" / "files").iterdir()) == files_before

    # A quota is not cured by retrying: the SDK is told not to.
    raw = httpx.post(
        f"{srv.base_url}/files",
        headers={"Authorization": f"Bearer {client.api_key}"},
        files={"file": ("c.jsonl", data)},
        data={"purpose": "fine-tune"},
    )
    assert raw.status_code == 429 and raw.headers["x-should-retry"] == "false"

    # Deleting makes room; other projects were never limited.
    client.files.delete(first.id)
    client.files.create(file=("b.jsonl", io.BytesIO(data)), purpose="fine-tune")
    other = _client(srv, "roomy")
    for name in ("a.jsonl", "b.jsonl"):
        other.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")

    listing = run_cli("projects", "list", data_dir=srv.data_dir).splitlines()
    row = next(line.split("\t") for line in listing if line.startswith("small\t"))
    assert row[1] == str(len(data) + 100) and row[5] == str(len(data))  # limit, storage used


def test_concurrent_jobs_quota(srv: Server) -> None:
    client = _client(srv, "one-at-a-time")
    run_cli("projects", "set", "one-at-a-time", "--max-concurrent-jobs", "1",
            data_dir=srv.data_dir)  # fmt: skip
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    first = _sft(client, train)

    with pytest.raises(openai.RateLimitError) as err:
        _sft(client, train)
    error = err.value.body
    assert error["type"] == "insufficient_quota" and error["code"] == "quota_exceeded"
    assert "max_concurrent_jobs" in error["message"] and "'one-at-a-time'" in error["message"]
    assert "1 of its limit of 1 jobs are not finished" in error["message"]
    assert len(client.fine_tuning.jobs.list().data) == 1  # nothing was queued

    # A finished job frees its slot.
    client.fine_tuning.jobs.cancel(first.id)
    _sft(client, train)


def test_the_server_default_applies_without_a_project_setting(srv: Server) -> None:
    client = _client(srv, "defaults")
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    _sft(client, train)
    _sft(client, train)
    with pytest.raises(openai.RateLimitError) as err:
        _sft(client, train)
    assert "2 of its limit of 2 jobs are not finished" in err.value.message
