"""Files API through the official openai SDK against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import openai
import pytest
from openai.pagination import SyncCursorPage
from openai.types import FileDeleted, FileObject

RL_LINE = {"messages": [{"role": "user", "content": "2+3="}], "reference_answer": "5"}
SFT_LINE = {
    "messages": [{"role": "user", "content": "2+3="}, {"role": "assistant", "content": "5"}]
}


def jsonl(*lines: object) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(
    client: openai.OpenAI, data: bytes, name: str = "train.jsonl", purpose: str = "fine-tune"
):
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose)


def blob_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_retrieve_content_delete(client: openai.OpenAI) -> None:
    data = jsonl(RL_LINE, RL_LINE) + "é unicode stays".encode()[:0]
    created = upload(client, data)
    FileObject.model_validate(created.model_dump())
    assert created.id.startswith("file-")
    assert (created.bytes, created.filename, created.purpose) == (
        len(data),
        "train.jsonl",
        "fine-tune",
    )
    assert created.status == "processed"
    assert created._request_id and created._request_id.startswith("req_")

    got = client.files.retrieve(created.id)
    assert FileObject.model_validate(got.model_dump()) == FileObject.model_validate(
        created.model_dump()
    )
    assert client.files.content(created.id).read() == data

    deleted = client.files.delete(created.id)
    FileDeleted.model_validate(deleted.model_dump())
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(created.id)
    assert err.value.param == "id" and created.id in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_binary_content_is_exact(client: openai.OpenAI) -> None:
    data = bytes(range(256)) * 1000
    created = upload(client, data, name="blob.bin", purpose="user_data")
    assert client.files.content(created.id).read() == data


def test_list_pagination_orders_and_purpose(server, client: openai.OpenAI) -> None:
    project_client = server.client(server.new_key("pagination"))
    ids = [upload(project_client, jsonl(SFT_LINE), name=f"f{i}.jsonl").id for i in range(5)]
    other = upload(project_client, b"anything", name="x.txt", purpose="user_data").id

    page = project_client.files.list(purpose="fine-tune", limit=2, order="asc")
    raw = page.model_dump()
    assert raw["has_more"] is True and raw["first_id"] == ids[0] and raw["last_id"] == ids[1]
    for f in page.data:
        FileObject.model_validate(f.model_dump())
    assert [f.id for f in page] == ids  # follows `after` across pages
    desc = [f.id for f in project_client.files.list(purpose="fine-tune", limit=3, order="desc")]
    assert desc == ids[::-1]
    everything = [f.id for f in project_client.files.list()]
    assert everything == [other, *ids[::-1]]  # default order is newest first
    last = project_client.files.list(limit=10, order="asc", after=ids[-1])
    assert [f.id for f in last.data] == [other] and last.has_more is False
    assert isinstance(page, SyncCursorPage)


BAD_FILES = [
    (b'{"messages": []}\n', "Line 1 has 'messages' that is not a non-empty list"),
    (jsonl(RL_LINE, RL_LINE) + b"[1, 2]\n", "Line 3 is not a dictionary"),
    (jsonl(RL_LINE) + b"{not json\n", "Line 2 is not a dictionary (HINT"),
    (jsonl({"prompt": "x"}), "Line 1 is missing the key 'messages'"),
    (jsonl({"messages": [{"role": "robot", "content": "x"}]}), "unrecognized role 'robot'"),
    (jsonl({"messages": [{"role": "user"}]}), "messages[0] is missing content"),
    (jsonl({"messages": [{"content": "x"}]}), "missing the key 'role'"),
    (
        jsonl({"messages": [{"role": "user", "content": "x", "colour": 1}]}),
        "unrecognized key 'colour'",
    ),
    (
        jsonl({"messages": [{"role": "tool", "content": "x", "tool_call_id": "a"}]}),
        "ends with a 'tool'",
    ),
    (
        jsonl(RL_LINE, SFT_LINE),
        "Line 2 is a supervised example, but the lines before it are reinforcement",
    ),
    (
        jsonl(RL_LINE) + b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}\n',
        "Line 2 is not valid UTF-8",
    ),
    (b"", "The file is empty"),
    (b"\n\n", "The file is empty"),
    (
        jsonl({"messages": [{"role": "user", "content": "x" * 70_000}]}),
        "Line 1 is longer than 65536 bytes",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_bad_fine_tune_files_are_rejected(server, client, data: bytes, message: str) -> None:
    before = len(client.files.list().data)
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, data)
    assert message in err.value.message
    assert err.value.type == "invalid_request_error" and err.value.param == "file"
    assert err.value.body["message"] in err.value.message  # the SDK unwrapped our envelope
    assert len(client.files.list().data) == before
    assert not list((server.data_dir / "blobs" / "tmp").iterdir())


def test_preference_and_supervised_files_are_recognised(client) -> None:
    pref = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    assert upload(client, jsonl(pref)).status == "processed"
    assert upload(client, jsonl(SFT_LINE) * 3).bytes == len(jsonl(SFT_LINE)) * 3


def test_upload_errors_name_the_problem(server, client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, jsonl(RL_LINE), name="train.csv")
    assert ".jsonl" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, jsonl(RL_LINE), purpose="nonsense")
    assert err.value.param == "purpose"
    r = httpx.post(
        f"{server.base_url}/files",
        headers={"Authorization": f"Bearer {server.api_key}"},
        files={"file": ("a.jsonl", jsonl(RL_LINE))},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    r = httpx.post(
        f"{server.base_url}/files",
        headers={"Authorization": f"Bearer {server.api_key}"},
        data={"purpose": "fine-tune"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    # A name the `files` table cannot hold is a 400 on every backend, never a 500 from
    # PostgreSQL alone; its bytes are not kept.
    before = blob_files(server.data_dir)
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, jsonl(RL_LINE), name="x" * 1100 + ".jsonl")
    assert err.value.param == "file" and "1024" in err.value.message
    assert blob_files(server.data_dir) == before


def test_oversized_upload_gets_413(server, client) -> None:
    before = len(client.files.list().data)
    big = jsonl(RL_LINE) * (4 * 1024 * 1024 // len(jsonl(RL_LINE)) + 10)
    with pytest.raises(openai.APIStatusError) as err:
        upload(client, big)
    assert err.value.status_code == 413 and "too large" in err.value.message
    assert len(client.files.list().data) == before


def test_expires_after(client) -> None:
    f = client.files.create(
        file=("e.jsonl", io.BytesIO(jsonl(RL_LINE))),
        purpose="fine-tune",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == f.created_at + 3600 or f.expires_at == f.created_at + 3601
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(
            file=("e.jsonl", io.BytesIO(jsonl(RL_LINE))),
            purpose="fine-tune",
            expires_after={"anchor": "created_at", "seconds": 5},
        )
    assert err.value.param == "expires_after.seconds"


def test_authentication(server) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        server.client("sk-wrong-key-123456").files.list()
    assert err.value.code == "invalid_api_key" and "Incorrect API key" in err.value.message
    r = httpx.get(f"{server.base_url}/files")
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.headers["x-request-id"].startswith("req_")


def test_project_isolation(server, client) -> None:
    mine = upload(client, jsonl(RL_LINE))
    theirs = server.client(server.new_key("intruders"))
    assert mine.id not in [f.id for f in theirs.files.list()]
    for call in (theirs.files.retrieve, theirs.files.content, theirs.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert client.files.retrieve(mine.id).id == mine.id


def test_request_errors_use_the_envelope(server) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    r = httpx.get(f"{server.base_url}/files", params={"limit": 0}, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    r = httpx.get(f"{server.base_url}/files", params={"order": "sideways"}, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "order"
    r = httpx.get(f"{server.base_url}/nothing-here", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.headers["x-request-id"].startswith("req_")
