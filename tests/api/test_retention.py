"""Retention: files expire (`expires_after`), deletes leave no blob behind, pruned
checkpoints and old rollouts go as the project's settings say."""

from __future__ import annotations

import io
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from openai.types import FileObject, ModelDeleted

from support import Server, run_cli, tiny_model_server
from support.jobs import ALL_PAIRS, addition_lines, upload, wait_for


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "OPENRFT_RETENTION_INTERVAL_S": "0.3",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
        "OPENRFT_LEASE_TTL_S": "4",
        "OPENRFT_HEARTBEAT_S": "0.5",
    }
    with tiny_model_server(tmp_path_factory.mktemp("retention"), env=env) as server:
        yield server


def blob_files(data_dir: Path) -> set[str]:
    """Every file in the blob store but in-flight temp files."""
    root = data_dir / "blobs"
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "tmp"
    }


def sql(data_dir: Path, statement: str, params: tuple = ()) -> None:
    with sqlite3.connect(data_dir / "openrft.db", timeout=30) as db:
        db.execute(statement, params)


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def sft(client: openai.OpenAI, **hp) -> str:
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        seed=1,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 20, **hp}}},
    )
    return job.id


def test_expired_files_are_gone(srv: Server) -> None:
    client = srv.client()
    data = addition_lines(ALL_PAIRS[:5], answer=True)
    keep = client.files.create(file=("keep.jsonl", io.BytesIO(data)), purpose="fine-tune")
    brief = client.files.create(
        file=("brief.jsonl", io.BytesIO(data)),
        purpose="fine-tune",
        expires_after={"anchor": "created_at", "seconds": 3600},  # the shortest OpenAI allows
    )
    FileObject.model_validate(brief.model_dump())
    assert brief.expires_at == brief.created_at + 3600 and keep.expires_at is None
    blob = srv.data_dir / "blobs" / "files" / brief.id
    assert blob.is_file()

    # Waiting an hour is not a test: move the expiry into the past in the database, as
    # the clock would have after an hour; the server's reads and sweep do the rest.
    sql(
        srv.data_dir,
        "UPDATE files SET expires_at = ? WHERE id = ?",
        (int(time.time()) - 1, brief.id),
    )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(brief.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(brief.id)
    assert brief.id not in {f.id for f in client.files.list()}
    eventually(lambda: not blob.exists())  # the sweep deleted the bytes
    assert client.files.content(keep.id).content == data  # and nothing else

    # An explicit delete removes the blob at once.
    keep_blob = srv.data_dir / "blobs" / "files" / keep.id
    assert client.files.delete(keep.id).deleted and not keep_blob.exists()


def test_keep_checkpoints_then_deletes_leave_no_blob(srv: Server) -> None:
    client = srv.client()
    run_cli("projects", "set", "default", "--keep-checkpoints", "1", data_dir=srv.data_dir)
    try:
        job_id = sft(client, n_epochs=2, checkpoint_interval=2)  # 10 steps, 5 checkpoints
        done = wait_for(client, job_id)
    finally:
        run_cli("projects", "set", "default", "--keep-checkpoints", "none", data_dir=srv.data_dir)
    assert done.status == "succeeded", done.error

    # The newest plus the best one (without a validation metric: the next newest).
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job_id))
    assert [c.step_number for c in checkpoints] == [10, 8]
    # (Other parts may keep more under the job's folder, tensorboard logs for one.)
    folders = {p.name for p in (srv.data_dir / "blobs" / "jobs" / job_id).iterdir()}
    assert {f for f in folders if f.startswith("ckpt-") or f == "final"} == {
        "final",
        "ckpt-step-8",
        "ckpt-step-10",
    }

    ckpt_model = checkpoints[1].fine_tuned_model_checkpoint
    deleted = client.models.delete(ckpt_model)
    ModelDeleted.model_validate(deleted.model_dump())
    assert not any("ckpt-step-8/" in f for f in blob_files(srv.data_dir))
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id)] == [10]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(ckpt_model)

    assert client.models.delete(done.fine_tuned_model).deleted
    assert not any(f"{job_id}/final/" in f for f in blob_files(srv.data_dir))
    assert done.fine_tuned_model not in {m.id for m in client.models.list()}

    before = blob_files(srv.data_dir)
    result_file = done.result_files[0]
    deleted_job = client.delete(f"/fine_tuning/jobs/{job_id}", cast_to=object)
    assert deleted_job == {"id": job_id, "object": "fine_tuning.job", "deleted": True}
    gone = before - blob_files(srv.data_dir)
    assert gone == {f for f in before if job_id in f or f == f"files/{result_file}"}
    assert not any(job_id in f for f in blob_files(srv.data_dir))
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve(job_id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(result_file)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(checkpoints[0].fine_tuned_model_checkpoint)
    # The training file is the user's upload, not the job's: it stays.
    assert client.files.retrieve(done.training_file).id == done.training_file


def test_an_unfinished_job_cannot_be_deleted(srv: Server) -> None:
    client = srv.client()
    job_id = sft(client, n_epochs=50)
    wait_for(client, job_id, statuses={"running"})
    with pytest.raises(openai.BadRequestError) as err:
        client.delete(f"/fine_tuning/jobs/{job_id}", cast_to=object)
    assert "Cannot delete a job whose status is 'running'" in err.value.message
    assert err.value.param == "fine_tuning_job_id"
    client.fine_tuning.jobs.cancel(job_id)
    deadline = time.monotonic() + 60
    while True:  # a cancelled job's worker stops within a step; until then: 409
        try:
            client.delete(f"/fine_tuning/jobs/{job_id}", cast_to=object)
            break
        except openai.ConflictError as exc:
            assert "still stopping" in exc.message
            assert time.monotonic() < deadline
            time.sleep(0.3)
    assert not any(job_id in f for f in blob_files(srv.data_dir))


def test_old_rollouts_are_swept(srv: Server) -> None:
    client = srv.client()
    grader = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
              "reference": "{{item.reference_answer}}", "operation": "eq"}  # fmt: skip
    train = upload(client, addition_lines(ALL_PAIRS[:8], answer=False), "rl.jsonl")
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=2,
        method={"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "group_size": 2, "max_completion_tokens": 4}}},
    )  # fmt: skip
    assert wait_for(client, job.id).status == "succeeded"

    def steps() -> list[int]:
        page = client.get(f"/fine_tuning/jobs/{job.id}/rollouts", cast_to=object,
                          options={"params": {"limit": 1000}})  # fmt: skip
        return sorted({r["step"] for r in page["data"]})

    assert steps() == [1, 2]
    # Age step 1's rollouts by two days in the database (the clock's part), then keep
    # one day's: the sweep drops step 1 and keeps step 2.
    sql(srv.data_dir, "UPDATE job_rollouts SET created_at = created_at - 172800 "
        "WHERE job_id = ? AND step = 1", (job.id,))  # fmt: skip
    run_cli("projects", "set", "default", "--rollout-retention-days", "1", data_dir=srv.data_dir)
    try:
        eventually(lambda: steps() == [2])
    finally:
        run_cli(
            "projects", "set", "default", "--rollout-retention-days", "none", data_dir=srv.data_dir
        )
