"""Experiment tracking: a job's `wandb` integration (OpenAI's shape) writes an offline
W&B run, and every job writes TensorBoard event files; both hold, per step, exactly
the metrics the job's events carry. Read back with wandb's own protobuf records and
TensorBoard's own event reader."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto import wandb_internal_pb2

from support import Server, tiny_model_server
from support.jobs import (
    ALL_PAIRS,
    addition_lines,
    metrics_events,
    upload,
    wait_for,
    wait_for_pause_event,
    wait_for_step,
)

WANDB = {"type": "wandb", "wandb": {"project": "openrft-tests", "tags": ["adder"]}}
SFT = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 20}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("tracking")
    wandb_home = tmp_path_factory.mktemp("wandb-home")
    # Offline, silent, and every folder wandb would touch under a temp dir: the worker
    # inherits the server's environment.
    env = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        **{
            f"WANDB_{name}_DIR": str(wandb_home / name.lower())
            for name in ("CACHE", "CONFIG", "DATA", "ARTIFACT")
        },
        "WANDB_DIR": str(wandb_home / "runs"),
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
    }
    with tiny_model_server(data_dir, env=env) as srv:
        yield srv


# -- reading what was written ------------------------------------------------------------
# wandb's `.wandb` file is a LevelDB-format log (32 KiB blocks of records with a 7-byte
# header: CRC-32 seeded by the record type, length, type FULL/FIRST/MIDDLE/LAST) after a
# 7-byte ":W&B" header; each record is a `wandb_internal_pb2.Record`. Newer wandb
# releases read it only inside their Go core, so the log framing is read here.
_BLOCK, _HEADER = 32768, 7


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), "not a wandb run file"
    pos, buf = _HEADER, b""
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0:  # zeroed rest of a block the writer has not filled yet
            break
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), "corrupt record"
        pos += _HEADER + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


def wandb_runs(data_dir: Path, job_id: str) -> list[list[wandb_internal_pb2.Record]]:
    """The job's offline runs (one per worker that trained it), oldest first."""
    folder = data_dir / "blobs" / "jobs" / job_id / "wandb"
    files = sorted(folder.glob(f"offline-run-*-{job_id}/run-{job_id}.wandb"))
    return [list(wandb_records(f)) for f in files]


def wandb_history(records: list[wandb_internal_pb2.Record]) -> dict[int, dict]:
    out = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item
            }
            out[row["_step"]] = row
    return out


def one(records: list[wandb_internal_pb2.Record], kind: str):
    found = [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]
    assert len(found) == 1, f"{len(found)} {kind} records"
    return found[0]


def tensorboard_scalars(data_dir: Path, job_id: str) -> EventAccumulator:
    acc = EventAccumulator(str(data_dir / "blobs" / "jobs" / job_id / "tensorboard"))
    acc.Reload()
    return acc


def event_metrics(client: openai.OpenAI, job_id: str) -> dict[int, dict]:
    return {e.data["step"]: e.data for e in metrics_events(client, job_id)}


def assert_tensorboard_matches(acc: EventAccumulator, events: dict[int, dict], key: str) -> None:
    points = acc.Scalars(key)
    assert [p.step for p in points] == sorted(events), key  # each step once, in order
    for p in points:  # TensorBoard keeps float32
        assert p.value == pytest.approx(events[p.step][key], rel=1e-6, abs=1e-7), (key, p.step)


# -- tests -------------------------------------------------------------------------------


def test_supervised_job_logs_to_wandb_offline_and_tensorboard(server) -> None:
    client = server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=1, method=SFT, integrations=[WANDB]
    )
    FineTuningJob.model_validate(job.model_dump())
    assert [i.model_dump() for i in job.integrations] == [
        {
            "type": "wandb",
            "wandb": {"project": "openrft-tests", "name": None, "entity": None, "tags": ["adder"]},
        }
    ]
    done = wait_for(client, job.id, timeout=120)
    assert done.status == "succeeded", done.error
    FineTuningJob.model_validate(done.model_dump())
    assert done.integrations == job.integrations
    events = event_metrics(client, job.id)
    assert sorted(events) == [1, 2, 3, 4, 5]
    assert not [e for e in client.fine_tuning.jobs.list_events(job.id) if e.level == "warn"]

    [records] = wandb_runs(server.data_dir, job.id)
    run = one(records, "run")
    assert (run.run_id, run.project, run.display_name) == (job.id, "openrft-tests", job.id)
    assert "adder" in run.tags and f"openrft/{job.id}" in run.tags
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["method"] == "supervised" and config["seed"] == 1
    # The resolved hyperparameters, not the request's "auto".
    assert config["hyperparameters"]["batch_size"] == 20
    assert isinstance(config["hyperparameters"]["learning_rate_multiplier"], float)
    history = wandb_history(records)
    assert sorted(history) == sorted(events)
    for step, data in events.items():
        for key in ("train_loss", "train_mean_token_accuracy"):
            assert history[step][key] == pytest.approx(data[key], rel=1e-12), (key, step)
    assert one(records, "exit").exit_code == 0

    acc = tensorboard_scalars(server.data_dir, job.id)
    assert {"train_loss", "train_mean_token_accuracy"} <= set(acc.Tags()["scalars"])
    assert "step" not in acc.Tags()["scalars"]
    for key in ("train_loss", "train_mean_token_accuracy"):
        assert_tensorboard_matches(acc, events, key)


def test_reinforcement_job_logs_the_reward_per_step(server) -> None:
    client = server.client()
    grader = {"type": "string_check", "name": "exact", "operation": "eq",
              "input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}"}  # fmt: skip
    hp = {"n_epochs": 1, "batch_size": 4, "group_size": 4, "max_completion_tokens": 4,
          "early_stopping": False}  # fmt: skip
    train = upload(client, addition_lines(ALL_PAIRS[:12], answer=False), "rl.jsonl")
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        seed=2,
        method={
            "type": "reinforcement",
            "reinforcement": {"grader": grader, "hyperparameters": hp},
        },
        integrations=[{"type": "wandb", "wandb": {"project": "openrft-rl", "name": "grpo"}}],
    )
    done = wait_for(client, job.id, timeout=180)
    assert done.status == "succeeded", done.error
    events = event_metrics(client, job.id)
    assert sorted(events) == [1, 2, 3]

    [records] = wandb_runs(server.data_dir, job.id)
    assert one(records, "run").display_name == "grpo"
    history = wandb_history(records)
    assert sorted(history) == [1, 2, 3]
    for step, data in events.items():
        for key in ("critic_rewards_mean", "train_reward_mean", "actor_pg_loss"):
            assert history[step][key] == pytest.approx(data[key], rel=1e-12), (key, step)
        # Per-grader scores, nested in the event, are flattened with `/` in both trackers.
        grader_mean = data["scores"]["graders"][0]["train_reward_mean"]
        assert history[step]["scores/graders/exact/train_reward_mean"] == grader_mean

    acc = tensorboard_scalars(server.data_dir, job.id)
    for key in ("critic_rewards_mean", "train_reward_mean", "actor_kl"):
        assert_tensorboard_matches(acc, events, key)
    points = acc.Scalars("scores/graders/exact/train_reward_mean")
    expected = [events[s]["scores"]["graders"][0]["train_reward_mean"] for s in (1, 2, 3)]
    assert [p.value for p in points] == pytest.approx(expected)


def test_paused_job_continues_the_same_run(server) -> None:
    client = server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    method = {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 10, "checkpoint_interval": 5}}}  # fmt: skip
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=4, method=method, integrations=[WANDB]
    )
    wait_for_step(client, job.id, 3)
    client.fine_tuning.jobs.pause(job.id)
    wait_for(client, job.id, statuses={"paused"}, timeout=60)
    wait_for_pause_event(client, job.id)
    paused_at = max(event_metrics(client, job.id))
    client.fine_tuning.jobs.resume(job.id)
    done = wait_for(client, job.id, timeout=120)
    assert done.status == "succeeded", done.error
    events = event_metrics(client, job.id)
    assert sorted(events) == list(range(1, 31)) and paused_at < 30

    # Two workers, two offline run files, one run id: `wandb sync` merges them into one run.
    runs = wandb_runs(server.data_dir, job.id)
    assert len(runs) == 2
    assert {one(records, "run").run_id for records in runs} == {job.id}
    first, second = (wandb_history(records) for records in runs)
    assert max(first) == paused_at and min(second) == paused_at + 1
    for step, data in events.items():
        row = (first if step <= paused_at else second)[step]
        assert row["train_loss"] == pytest.approx(data["train_loss"], rel=1e-12)

    assert_tensorboard_matches(tensorboard_scalars(server.data_dir, job.id), events, "train_loss")


def test_a_failing_integration_is_one_warning_not_a_failed_job(server) -> None:
    client = server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    # wandb itself refuses this project name (no '/' allowed), when the worker starts the run.
    bad = {"type": "wandb", "wandb": {"project": "not/allowed"}}
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=1, method=SFT, integrations=[bad]
    )
    done = wait_for(client, job.id, timeout=120)
    assert done.status == "succeeded", done.error
    warnings = [e for e in client.fine_tuning.jobs.list_events(job.id) if e.level == "warn"]
    assert len(warnings) == 1 and "wandb integration" in warnings[0].message
    assert "not/allowed" in warnings[0].message
    events = event_metrics(client, job.id)
    assert_tensorboard_matches(tensorboard_scalars(server.data_dir, job.id), events, "train_loss")


@pytest.mark.parametrize(
    "integrations",
    [
        [{"type": "wandb", "wandb": {"name": "no project"}}],
        [{"type": "wandb", "wandb": {"project": ""}}],
        [{"type": "tensorboard"}],
        [{"type": "wandb"}],
        [{"type": "wandb", "wandb": {"project": "p", "colour": "red"}}],
        [{"type": "wandb", "wandb": {"project": "p", "tags": "not-a-list"}}],
        [WANDB, WANDB],
        {"type": "wandb", "wandb": {"project": "p"}},
    ],
)
def test_malformed_integrations_are_rejected(server, integrations) -> None:
    client = server.client()
    train = upload(client, addition_lines(ALL_PAIRS[:20], answer=True))
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(
            model="tiny", training_file=train, method=SFT, integrations=integrations
        )
    assert err.value.status_code == 400
    assert err.value.param is not None and err.value.param.startswith("integrations")
    assert all(j.training_file != train for j in client.fine_tuning.jobs.list(limit=100))
