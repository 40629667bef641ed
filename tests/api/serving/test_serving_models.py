"""Fine-tuned models, checkpoints and LoRA adapters answer the moment they exist
(Decision 3), under ids that hold `/` and `:` (Decision 10)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion

from support import add_adapter_model, run_cli
from support.jobs import ALL_PAIRS, addition_lines, upload, wait_for

GREEDY = {
    "messages": [{"role": "user", "content": "3+4="}],
    "max_tokens": 6,
    "temperature": 0,
    "logprobs": True,
}


def _answer(client: openai.OpenAI, model: str) -> list[list[int] | None]:
    """The greedy answer's token bytes (a random model's text is mostly invalid UTF-8)."""
    r = client.chat.completions.create(model=model, **GREEDY)
    ChatCompletion.model_validate(r.model_dump())
    assert r.model == model and r.choices[0].logprobs is not None
    return [t.bytes for t in r.choices[0].logprobs.content or []]


def test_fine_tuned_model_and_checkpoint_answer(serving_server, client) -> None:
    # A base model whose name holds `/`, on the tiny model's folder.
    folder = serving_server.data_dir / "models" / "tiny"
    run_cli("models", "add", "org/tiny", str(folder), data_dir=serving_server.data_dir)
    assert client.models.retrieve("org/tiny").id == "org/tiny"
    assert _answer(client, "org/tiny") == _answer(client, "tiny")  # the same weights

    job = client.fine_tuning.jobs.create(
        model="org/tiny",
        training_file=upload(client, addition_lines(ALL_PAIRS, answer=True)),
        suffix="add",
        seed=1,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 25}},
        },
    )
    done = wait_for(client, job.id, timeout=120)
    assert done.status == "succeeded", done.error
    model = done.fine_tuned_model
    assert model == f"ft:org/tiny:default:add:{job.id}"
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    ckpt_model = checkpoint.fine_tuned_model_checkpoint
    for model_id in (model, ckpt_model):
        got = client.models.retrieve(model_id)  # `/` and `:` in the path
        Model.model_validate(got.model_dump())
        assert got.id == model_id and got.owned_by == "default"
    trained = _answer(client, model)
    assert _answer(client, ckpt_model) == trained  # the last checkpoint is the final model
    assert trained != _answer(client, "tiny")
    events = list(client.responses.create(model=ckpt_model, input="1+2=", stream=True))
    assert events[-1].type in ("response.completed", "response.incomplete")
    # Another project sees neither.
    other = openai.OpenAI(
        base_url=serving_server.base_url, api_key=serving_server.new_key("p-other"), max_retries=0
    )
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=model, **GREEDY)


def _perturbed_adapter(base: Path, target: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # zero at init: perturb so the adapter changes the output
                param.normal_(0.0, 0.5)
    peft_model.save_pretrained(target)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers name
def test_lora_adapters_serve_beside_their_base(serving_server, client) -> None:
    store = serving_server.open_store()
    base_folder = serving_server.data_dir / "models" / "tiny"
    for i in (1, 2):
        _perturbed_adapter(base_folder, store.blobs.path(f"test/lora-{i}"), seed=i)
    lora, child = "ft:tiny:default:lora:test-1", "ft:tiny:default:lora:test-2"
    add_adapter_model(store, lora, source="test/lora-1", parent=None)
    # An adapter trained on top of another: served on the base with the parent merged in.
    add_adapter_model(store, child, source="test/lora-2", parent=lora)
    store.close()

    before = _answer(client, "tiny")
    adapted = _answer(client, lora)
    assert adapted != before
    assert _answer(client, "tiny") == before  # the base is unchanged beside its adapter
    assert _answer(client, lora) == adapted
    assert _answer(client, child) not in (before, adapted)
    assert _answer(client, "tiny") == before
    streamed = client.chat.completions.create(model=lora, stream=True, **GREEDY)
    tokens = [
        t.bytes
        for c in streamed
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert tokens == adapted
