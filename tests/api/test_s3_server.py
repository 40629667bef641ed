"""`openrft serve` with OPENRFT_BLOB_URL=s3://...: files, checkpoints and final weights
live in a real S3-compatible server (moto, on loopback), and the server chats with
models whose weights it fetched from there."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types import FileObject
from openai.types.chat import ChatCompletion

from support import Server, tiny_model_server
from support.jobs import ALL_PAIRS, addition_lines, upload, wait_for
from support.s3 import MotoS3

pytest.importorskip("obstore")

PREFIX = "deploy/blobs"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    srv = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3_server(s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        **s3.env,
        "OPENRFT_BLOB_URL": f"s3://{s3.bucket}/{PREFIX}",
        "OPENRFT_LEASE_TTL_S": "4",
        "OPENRFT_HEARTBEAT_S": "0.5",
        "OPENRFT_SCHEDULER_INTERVAL_S": "0.2",
    }
    # Base models are not blobs: `tiny` stays a local folder under the data dir.
    with tiny_model_server(tmp_path_factory.mktemp("s3-server"), env=env) as srv:
        yield srv


def test_files_round_trip_through_the_bucket(s3_server: Server, s3: MotoS3) -> None:
    ready = httpx.get(f"{s3_server.root_url}/readyz").json()
    assert ready["checks"]["blob_store"] is True
    client = s3_server.client()
    data = os.urandom(9 * 1024 * 1024) + b"end"  # past one part: a multipart upload
    f = client.files.create(file=("blob.bin", io.BytesIO(data)), purpose="user_data")
    FileObject.model_validate(f.model_dump())
    assert f.bytes == len(data)
    key = f"{PREFIX}/files/{f.id}"
    assert s3.objects(key) == {key: len(data)}
    assert s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data
    assert not (s3_server.data_dir / "blobs" / "files" / f.id).exists()
    assert client.files.content(f.id).content == data
    client.files.delete(f.id)
    assert s3.objects(key) == {}


def test_a_rejected_upload_leaves_nothing_in_the_bucket(s3_server: Server, s3: MotoS3) -> None:
    client = s3_server.client()
    before = s3.objects(f"{PREFIX}/files/")
    # Valid lines past one part (so a multipart upload has begun), then a bad last line.
    good = addition_lines(ALL_PAIRS, answer=True) * 1200
    assert len(good) > 9 * 1024 * 1024
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(
            file=("bad.jsonl", io.BytesIO(good + b"not json\n")), purpose="fine-tune"
        )
    assert err.value.body["param"] == "file"  # type: ignore[index]
    assert s3.objects(f"{PREFIX}/files/") == before
    assert s3.uploads() == []  # the multipart upload was aborted, not left behind


def test_checkpoints_and_weights_live_in_the_bucket(s3_server: Server, s3: MotoS3) -> None:
    client = s3_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        suffix="s3",
        seed=1,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 1, "batch_size": 20, "checkpoint_interval": 2}
            },
        },
    )
    done = wait_for(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.result_files
    csv = client.files.content(done.result_files[0]).text
    assert csv.startswith("step,train_loss")

    objects = s3.objects(f"{PREFIX}/jobs/{job.id}/")
    folders = {k.removeprefix(f"{PREFIX}/jobs/{job.id}/").split("/")[0] for k in objects}
    assert {"final", "ckpt-step-2", "ckpt-step-4", "ckpt-step-5"} <= folders
    assert any(k.endswith("/final/adapter_model.safetensors") for k in objects) or any(
        k.endswith("/final/model.safetensors") for k in objects
    )
    assert any(k.endswith("/ckpt-step-5/state.pt") for k in objects)
    # Weights never land in the local blob folder: only in the bucket (and the cache).
    assert not (s3_server.data_dir / "blobs" / "jobs" / job.id / "final").exists()

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints[0].step_number == 5
    for model in (done.fine_tuned_model, checkpoints[-1].fine_tuned_model_checkpoint):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "2+3="}], max_tokens=4
        )
        ChatCompletion.model_validate(reply.model_dump())
        assert reply.choices[0].message.role == "assistant"
    cache = s3_server.data_dir / "cache" / "blobs"
    assert any(p.name.endswith("final") for p in cache.iterdir()), list(cache.iterdir())
