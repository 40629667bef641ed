"""Supervised fine-tuning jobs through the SDK: the whole flow, and every rejection."""

from __future__ import annotations

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from support.jobs import ALL_PAIRS, addition_lines, metrics_events, upload, wait_for


def sft_method(**hp) -> dict:
    return {"type": "supervised", "supervised": {"hyperparameters": hp}}


def test_supervised_job_end_to_end(job_server) -> None:
    client = job_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    valid = upload(client, addition_lines(ALL_PAIRS[::7], answer=True), "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        validation_file=valid,
        suffix="adder",
        seed=3,
        method=sft_method(n_epochs=4, batch_size=20, learning_rate_multiplier=1.0),
        metadata={"purpose": "e2e"},
    )
    FineTuningJob.model_validate(job.model_dump())
    assert job.status == "validating_files" and job.method.type == "supervised"
    assert job.hyperparameters.n_epochs == 4
    done = wait_for(client, job.id)
    assert done.status == "succeeded", done.error
    FineTuningJob.model_validate(done.model_dump())
    assert done.fine_tuned_model == f"ft:tiny:default:adder:{job.id}"
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at
    assert (
        done.result_files
        and client.files.retrieve(done.result_files[0]).purpose == "fine-tune-results"
    )
    csv = client.files.content(done.result_files[0]).text.splitlines()
    assert csv[0].startswith("step,train_loss") and len(csv) == 1 + 20

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))
    for e in events:
        FineTuningJobEvent.model_validate(e.model_dump())
    messages = [e.message for e in events][::-1]  # oldest first
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    for expected in (
        "Validating training file",
        "Files validated",
        "Fine-tuning job started",
        "Step 1/20: training loss=",
        "Checkpoint created at step 20",
        "New fine-tuned model created: ft:",
        "The job has successfully completed",
    ):
        assert any(m.startswith(expected) for m in messages), expected
    steps = [e.data["step"] for e in metrics_events(client, job.id)]
    assert sorted(steps) == list(range(1, 21))  # one metrics event per step
    first, last = (metrics_events(client, job.id)[i].data for i in (-1, 0))
    assert last["train_loss"] < first["train_loss"] * 0.6  # it learned
    assert "valid_loss" in last and last["total_steps"] == 20

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints[0].step_number == 20  # newest first
    for ck in checkpoints:
        FineTuningJobCheckpoint.model_validate(ck.model_dump())
        assert (
            ck.fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-{ck.step_number}"
        )
    ids = {m.id for m in client.models.list()}
    assert done.fine_tuned_model in ids and checkpoints[0].fine_tuned_model_checkpoint in ids
    assert job.id in {j.id for j in client.fine_tuning.jobs.list(metadata={"purpose": "e2e"})}
    assert job.id not in {j.id for j in client.fine_tuning.jobs.list(metadata={"purpose": "other"})}


def test_rejections_name_the_param(job_server) -> None:
    client = job_server.client()
    sft = upload(client, addition_lines(ALL_PAIRS[:10], answer=True))
    rl = upload(client, addition_lines(ALL_PAIRS[:10], answer=False))
    foreign = upload(
        job_server.client(job_server.new_key("elsewhere")),
        addition_lines(ALL_PAIRS[:10], answer=True),
    )
    cases = [
        (dict(model="no-such-model", training_file=sft), "model"),
        (dict(model="tiny", training_file="file-missing"), "training_file"),
        (dict(model="tiny", training_file=foreign), "training_file"),
        (dict(model="tiny", training_file=rl, method=sft_method()), "training_file"),
        (dict(model="tiny", training_file=sft, validation_file="file-nope"), "validation_file"),
        (
            dict(model="tiny", training_file=sft, method=sft_method(n_epochs=0)),
            "method.supervised.hyperparameters.n_epochs",
        ),
        (
            dict(model="tiny", training_file=sft, method=sft_method(batch_size=11)),
            "method.supervised.hyperparameters.batch_size",
        ),
        (
            dict(model="tiny", training_file=sft, method=sft_method(learning_rate_multiplier=-1)),
            "method.supervised.hyperparameters.learning_rate_multiplier",
        ),
        (
            dict(model="tiny", training_file=sft, method=sft_method(warp_speed=9)),
            "method.supervised.hyperparameters.warp_speed",
        ),
        (dict(model="tiny", training_file=sft, method={"type": "dpo", "dpo": {}}), "method.type"),
        (dict(model="tiny", training_file=sft, suffix="x" * 65), "suffix"),
        (dict(model="tiny", training_file=sft, seed=-1), "seed"),
        (
            dict(model="tiny", training_file=sft, metadata={str(i): "v" for i in range(17)}),
            "metadata",
        ),
        (
            dict(model="tiny", training_file=sft, hyperparameters={"n_epochs": 99}),
            "hyperparameters.n_epochs",
        ),
    ]
    before = len(client.fine_tuning.jobs.list(limit=100).data)
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(**kwargs)
        assert err.value.param == param, (kwargs, err.value.message)
        assert err.value.type == "invalid_request_error"
    assert len(client.fine_tuning.jobs.list(limit=100).data) == before
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nothing")
