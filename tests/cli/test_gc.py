"""`openrft gc`: removes the blobs no row refers to, and nothing else, beside a live
server that goes on serving every file, model and checkpoint."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from support import Server, run_cli
from support.jobs import ALL_PAIRS, addition_lines, upload, wait_for


def _plant(path: Path, data: bytes = b"orphan bytes") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _age(root: Path, seconds: float, *, skip: set[Path]) -> None:
    """gc never touches what was written in the last hour (it cannot tell a blob whose
    row is being written from an orphan); set mtimes back as the clock would."""
    when = time.time() - seconds
    for path in [*root.rglob("*"), root]:
        if not any(path == s or s in path.parents for s in skip):
            os.utime(path, (when, when), follow_symlinks=False)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_gc_removes_planted_orphans_and_nothing_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    run_cli("models", "init", "tiny", data_dir=data_dir)
    server = Server(data_dir, env={"OPENRFT_SCHEDULER_INTERVAL_S": "0.2"}).start()
    try:
        client = server.client()
        train = upload(client, addition_lines(ALL_PAIRS, answer=True))
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=train, seed=4,
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 1, "batch_size": 20, "checkpoint_interval": 2}}},
        )  # fmt: skip
        done = wait_for(client, job.id)
        assert done.status == "succeeded", done.error
        steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        assert steps == [5, 4, 2]

        blobs = data_dir / "blobs"
        # A delete that crashed after its rows and before its bytes: checkpoint 2's row
        # is pruned and its model deleted, but its folder is still there.
        with sqlite3.connect(data_dir / "openrft.db", timeout=30) as db:
            db.execute(
                "UPDATE job_checkpoints SET pruned = 1 WHERE job_id = ? AND step_number = 2",
                (job.id,),
            )
            db.execute("UPDATE models SET deleted = 1 WHERE id LIKE ?", (f"%{job.id}:ckpt-step-2",))
        planted = {
            "files/file-orphan": blobs / "files" / "file-orphan",
            "jobs/ftjob-ghost": blobs / "jobs" / "ftjob-ghost" / "final" / "model.safetensors",
            f"jobs/{job.id}/ckpt-step-999": blobs / "jobs" / job.id / "ckpt-step-999" / "state",
            "tmp/stale.part": blobs / "tmp" / "stale.part",
        }
        for path in planted.values():
            _plant(path)
        orphans = {**planted, f"jobs/{job.id}/ckpt-step-2": blobs / "jobs" / job.id / "ckpt-step-2"}
        fresh = blobs / "files" / "file-just-written"  # an upload whose row is on its way
        _plant(fresh)
        _plant(blobs / "someone-elses" / "thing")  # a folder gc does not know: left alone
        _age(blobs, 2 * 3600, skip={fresh})
        before = _tree(blobs)

        dry = run_cli("gc", "--dry-run", data_dir=data_dir).splitlines()
        assert {line.split()[2] for line in dry[:-1]} == set(orphans)
        assert dry[-1].startswith(f"would remove {len(orphans)} unreferenced blobs")
        assert _tree(blobs) == before

        out = run_cli("gc", data_dir=data_dir).splitlines()
        assert {line.split()[1] for line in out[:-1]} == set(orphans)
        removed = before - _tree(blobs)
        expected = {f for f in before if any(f == k or f.startswith(k + "/") for k in orphans)}
        assert removed == expected  # the orphans, all of them, and nothing else
        freed = sum(int(line.split("(")[1].split()[0]) for line in out[:-1])
        assert out[-1] == f"removed {len(orphans)} unreferenced blobs, {freed} bytes"
        assert fresh.exists() and (blobs / "someone-elses" / "thing").exists()
        assert run_cli("gc", data_dir=data_dir).splitlines() == [
            "removed 0 unreferenced blobs, 0 bytes"
        ]

        # The live server still serves everything it knows.
        assert client.files.content(train).content == addition_lines(ALL_PAIRS, answer=True)
        assert client.files.content(done.result_files[0]).text.startswith("step,")
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id)
        assert [c.step_number for c in checkpoints] == [5, 4]
        for model in (done.fine_tuned_model, checkpoints.data[1].fine_tuned_model_checkpoint):
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "2+3="}], max_tokens=2
            )
            assert reply.choices[0].message.content is not None
    finally:
        server.stop()
