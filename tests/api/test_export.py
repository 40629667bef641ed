"""Export (an extension): `GET /v1/models/{id}/content` and `openrft models export` write
Hugging Face folders that plain `transformers` (with `peft` for an adapter) loads, and
that answer greedily token for token as the server does."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import quote

import httpx
import openai
import pytest
import torch
from openai.types.chat import ChatCompletion

from support import Server, add_adapter_model, run_cli
from support.jobs import ALL_PAIRS, addition_lines, upload, wait_for

PROMPTS = ("9+9=", "Tell me a story.")
MAX_TOKENS = 6

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # peft on transformers names


@pytest.fixture(scope="module")
def trained(serving_server: Server) -> dict[str, str]:
    """A fully fine-tuned job and a LoRA job on `tiny` (20 steps, checkpoints at 15 and 20)."""
    client = serving_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    jobs = {}
    for kind in ("full", "lora"):
        hp = {"n_epochs": 4, "batch_size": 20, "checkpoint_interval": 15}
        if kind == "lora":
            hp |= {"fine_tuning_type": "lora", "learning_rate_multiplier": 4.0}
        jobs[kind] = client.fine_tuning.jobs.create(
            model="tiny",
            training_file=train,
            suffix=f"exp-{kind}",
            seed=1,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}},
        ).id
    models = {}
    for kind, job_id in jobs.items():
        done = wait_for(client, job_id, timeout=120)
        assert done.status == "succeeded", done.error
        models[kind] = done.fine_tuned_model
        steps = {
            c.step_number: c.fine_tuned_model_checkpoint
            for c in client.fine_tuning.jobs.checkpoints.list(job_id).data
        }
        # The full job's mid-run checkpoint answers unlike its final model; the LoRA job's
        # step 15 still stops at once (nothing to compare), so its last one is used.
        models[f"{kind}-ckpt"] = steps[15] if kind == "full" else steps[max(steps)]
    return models


# Greedy answers as (token bytes, logprob) pairs, and whether the model chose to stop.
Answer = tuple[list[tuple[bytes, float]], bool]


def _server_greedy(server: Server, model: str, prompt: str) -> Answer:
    r = server.client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        logprobs=True,
    )
    ChatCompletion.model_validate(r.model_dump())
    assert r.choices[0].logprobs is not None
    tokens = [(bytes(t.bytes or []), t.logprob) for t in r.choices[0].logprobs.content or []]
    return tokens, r.choices[0].finish_reason == "stop"


def _local_greedy(model: torch.nn.Module, folder: Path, prompt: str) -> Answer:
    """Greedy tokens through the exported tokenizer's chat template, encoded as the server does."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        out = model.eval().generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=MAX_TOKENS,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[0, len(ids) :].tolist()
    logprobs = [torch.log_softmax(step[0].float(), -1) for step in out.logits]
    stopped = bool(new) and new[-1] == tokenizer.eos_token_id
    if stopped:
        new = new[:-1]  # the server ends on the stop token without returning it
    return [
        (tokenizer.decode([i]).encode() if i >= 256 else bytes([i]), logprobs[n][i].item())
        for n, i in enumerate(new)
    ], stopped


def _same_answers(server: Server, model_id: str, local: torch.nn.Module, folder: Path) -> None:
    """Token for token, with the same log-probabilities, on every prompt."""
    for prompt in PROMPTS:
        want, want_stop = _server_greedy(server, model_id, prompt)
        got, got_stop = _local_greedy(local, folder, prompt)
        assert [t for t, _ in got] == [t for t, _ in want], (model_id, prompt)
        assert got_stop == want_stop
        assert [lp for _, lp in got] == pytest.approx([lp for _, lp in want], abs=1e-4)


def _load_full(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def _load_adapter(folder: Path) -> torch.nn.Module:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)


def _content_url(server: Server, model: str) -> str:
    return f"{server.base_url}/models/{quote(model, safe='')}/content"


def _download(server: Server, model: str, target: Path, **params: str) -> httpx.Response:
    r = httpx.get(
        _content_url(server, model),
        params=params,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"].startswith('attachment; filename="')
    assert int(r.headers["content-length"]) == len(r.content)
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        tar.extractall(target, filter="data")
    return r


def _export_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openrft.cli",
            "models",
            "export",
            *args,
            "--base-url",
            server.base_url,
            "--api-key",
            server.api_key,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    )


def test_full_weights_export_loads_and_answers_like_the_server(
    serving_server: Server, trained: dict[str, str], tmp_path: Path
) -> None:
    model = trained["full"]
    r = _download(serving_server, model, tmp_path / "full")
    assert r.headers["x-openrft-export"] == "full"
    name = r.headers["content-disposition"].split('filename="')[1].rstrip('"')
    assert name.endswith(".tar") and ":" not in name and "/" not in name
    files = {p.name for p in (tmp_path / "full").iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json"} <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    assert "openrft.json" not in files
    _same_answers(serving_server, model, _load_full(tmp_path / "full"), tmp_path / "full")
    # Trained, not the base: the answers differ (and are not empty).
    first = _server_greedy(serving_server, model, PROMPTS[0])
    assert first[0] and first != _server_greedy(serving_server, "tiny", PROMPTS[0])

    # A checkpoint, through the CLI.
    ckpt = trained["full-ckpt"]
    out = _export_cli(serving_server, ckpt, str(tmp_path / "ckpt"))
    assert out.returncode == 0, out.stderr
    assert "full weights" in out.stdout
    _same_answers(serving_server, ckpt, _load_full(tmp_path / "ckpt"), tmp_path / "ckpt")


def test_lora_export_as_adapter_and_merged(
    serving_server: Server, trained: dict[str, str], tmp_path: Path
) -> None:
    model = trained["lora"]
    adapter = tmp_path / "adapter"
    out = _export_cli(serving_server, model, str(adapter))
    assert out.returncode == 0, out.stderr
    assert "LoRA adapter" in out.stdout
    first = _server_greedy(serving_server, model, PROMPTS[0])
    assert first[0] and first != _server_greedy(serving_server, "tiny", PROMPTS[0])
    config = json.loads((adapter / "adapter_config.json").read_text())
    # The base's registered source, which a user resolves (here: the tiny model's folder).
    assert config["base_model_name_or_path"] == str(serving_server.data_dir / "models" / "tiny")
    files = {p.name for p in adapter.iterdir()}
    assert {"adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert "model.safetensors" not in files and "openrft.json" not in files
    _same_answers(serving_server, model, _load_adapter(adapter), adapter)

    merged = tmp_path / "merged"
    out = _export_cli(serving_server, model, str(merged), "--merged")
    assert out.returncode == 0, out.stderr
    assert not (merged / "adapter_config.json").exists()
    _same_answers(serving_server, model, _load_full(merged), merged)

    # A LoRA checkpoint, through the endpoint.
    ckpt = trained["lora-ckpt"]
    r = _download(serving_server, ckpt, tmp_path / "ckpt")
    assert r.headers["x-openrft-export"] == "adapter"
    _same_answers(serving_server, ckpt, _load_adapter(tmp_path / "ckpt"), tmp_path / "ckpt")

    # A folder that is not empty is refused, and left as it was.
    out = _export_cli(serving_server, model, str(adapter))
    assert out.returncode != 0 and "not an empty folder" in out.stderr
    assert {p.name for p in adapter.iterdir()} == files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_export_errors_and_edge_cases(
    serving_server: Server, trained: dict[str, str], tmp_path: Path
) -> None:
    key = {"Authorization": f"Bearer {serving_server.api_key}"}
    r = httpx.get(_content_url(serving_server, "ft:tiny:default:nope:ftjob-x"), headers=key)
    assert r.status_code == 404 and _error(r)["code"] == "model_not_found"
    other = {"Authorization": f"Bearer {serving_server.new_key('p-export')}"}
    r = httpx.get(_content_url(serving_server, trained["lora"]), headers=other)
    assert r.status_code == 404 and _error(r)["param"] == "model"
    out = _export_cli(serving_server, "no-such-model", str(tmp_path / "x"))
    assert out.returncode != 0 and "does not exist" in out.stderr
    assert not (tmp_path / "x").exists()

    # An adapter trained on a fine-tuned parent (Decision 4) only exports merged.
    store = serving_server.open_store()
    parent = store.models.get("default", trained["lora"])
    child = "ft:tiny:default:exp-child:test-1"
    add_adapter_model(store, child, source=parent.source, parent=parent.id)
    store.close()
    r = httpx.get(_content_url(serving_server, child), headers=key)
    assert r.status_code == 400 and _error(r)["param"] == "merged"
    _download(serving_server, child, tmp_path / "child", merged="true")
    _same_answers(serving_server, child, _load_full(tmp_path / "child"), tmp_path / "child")

    # A base model exports as its weights.
    _download(serving_server, "tiny", tmp_path / "base")
    _same_answers(serving_server, "tiny", _load_full(tmp_path / "base"), tmp_path / "base")

    # A Hugging Face id ending in "/content" is still retrieved by its plain path.
    data_dir = serving_server.data_dir
    run_cli("models", "add", "org/content", str(data_dir / "models" / "tiny"), data_dir=data_dir)
    client = serving_server.client()
    assert client.models.retrieve("org/content").id == "org/content"
    r = httpx.get(f"{serving_server.base_url}/models/org/content", headers=key)
    assert r.status_code == 200 and r.json()["id"] == "org/content"
    assert not any(p.name.startswith("export-") for p in (data_dir / "exports").iterdir())
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("org/nothing")
