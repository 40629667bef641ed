"""openrft's GRPO loss against TRL's own: same model, batch and log-probabilities, loss and
gradients agree to 1e-5 for every loss type.

TRL's side is a real `GRPOTrainer` (TRL is a test dependency only) whose `compute_loss` runs its
fused-LM-head forward and `_compute_loss`. Only generation and reward scoring are skipped: the
`inputs` dict is the one `_generate_and_score_completions` would hand to `compute_loss`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import nanstd

from datasets import Dataset
from openrft.training._advantages import group_advantages
from openrft.training._logprobs import completion_logprobs
from openrft.training._losses import PolicyLossConfig, grpo_loss, mask_truncated

VOCAB, PAD, EOS = 300, 300, 301
GROUP, MAX_COMPLETION, TEMPERATURE, ACCUM = 3, 7, 0.7, 2
BETA, EPSILON, EPSILON_HIGH = 0.05, 0.2, 0.28
REWARDS = [1.0, 0.0, 0.5, 0.2, 0.2, 0.2]  # the second group has no signal


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama and a word-level tokenizer, saved so TRL can load its reference model."""
    path = tmp_path_factory.mktemp("tiny-llama")
    words = {f"t{i}": i for i in range(VOCAB)} | {"<pad>": PAD, "<eos>": EOS, "<unk>": 302}
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    ).save_pretrained(path)
    config = LlamaConfig(
        vocab_size=303, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def _batch() -> dict[str, torch.Tensor]:
    """Two prompts x three completions: left-padded prompts, right-padded completions, one truncated."""
    prompt_ids = torch.tensor([[5, 6, 7]] * GROUP + [[PAD, 8, 9]] * GROUP)  # (6, 3)
    prompt_mask = (prompt_ids != PAD).long()  # (6, 3)
    completion_ids = torch.tensor(
        [
            [11, 12, EOS, PAD, PAD],
            [13, 14, 15, 16, 17],  # truncated: no EOS within the budget
            [18, EOS, PAD, PAD, PAD],
            [21, 22, 23, EOS, PAD],
            [24, 25, 26, 27, EOS],
            [28, 29, EOS, PAD, PAD],
        ]
    )  # (6, 5)
    lengths = torch.tensor([3, 5, 2, 4, 5, 3])  # (6,)
    completion_mask = (torch.arange(5) < lengths.unsqueeze(1)).long()  # (6, 5)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
    }


def _trainer(model_dir: Path, loss_type: str, **extra: object) -> GRPOTrainer:
    args = GRPOConfig(
        output_dir=str(model_dir / "out"), report_to="none", use_cpu=True, bf16=False,
        activation_checkpointing=False, per_device_train_batch_size=2 * GROUP, num_generations=GROUP,
        gradient_accumulation_steps=ACCUM, max_completion_length=MAX_COMPLETION, temperature=TEMPERATURE,
        beta=BETA, epsilon=EPSILON, epsilon_high=EPSILON_HIGH, loss_type=loss_type, save_strategy="no", **extra,
    )  # fmt: skip
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["t1 t2"] * 4}),
        processing_class=PreTrainedTokenizerFast.from_pretrained(model_dir),
    )
    # Set by HF Trainer's training loop for each accumulation window; this test is one micro-batch of one.
    trainer.current_gradient_accumulation_steps = ACCUM
    trainer.model.train()
    return trainer


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


CASES = [
    pytest.param("grpo", {}, id="grpo"),
    pytest.param("bnpo", {}, id="bnpo"),
    pytest.param("dr_grpo", {}, id="dr_grpo"),
    pytest.param("dapo", {}, id="dapo"),
    pytest.param("grpo", {"importance_sampling_level": "sequence"}, id="grpo-sequence"),
    pytest.param("dapo", {"delta": 1.3}, id="dapo-delta"),
    pytest.param("bnpo", {"use_bias_correction_kl": False}, id="bnpo-plain-kl"),
]


@pytest.mark.parametrize(("loss_type", "extra"), CASES)
def test_loss_and_gradients_match_trl(model_dir: Path, loss_type: str, extra: dict) -> None:
    trainer = _trainer(model_dir, loss_type, **extra)
    model = trainer.model
    batch = _batch()
    mask = mask_truncated(batch["completion_ids"], batch["completion_mask"], [EOS])  # (6, 5)
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)  # (6, 8)
    attention_mask = torch.cat([batch["prompt_mask"], mask], dim=1)  # (6, 8)
    c = batch["completion_ids"].size(1)

    with torch.no_grad():
        now, _ = completion_logprobs(model, input_ids, attention_mask, c, temperature=TEMPERATURE)
    noise = torch.Generator().manual_seed(1)
    old = now + 0.3 * torch.randn(now.shape, generator=noise)  # (6, 5) ratios leave [1-ε, 1+ε]
    ref = now + 0.2 * torch.randn(now.shape, generator=noise)  # (6, 5)
    advantages, _ = group_advantages(torch.tensor(REWARDS), GROUP)  # (6,)
    num_items = mask.sum() + 9  # (): the step's other micro-batch holds 9 more tokens

    inputs = batch | {
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": num_items,
    }
    trl_loss = trainer.compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = _grads(model)
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    logps, entropy = completion_logprobs(model, input_ids, attention_mask, c, temperature=TEMPERATURE)  # fmt: skip
    config = PolicyLossConfig(
        loss_type=loss_type, epsilon=EPSILON, epsilon_high=EPSILON_HIGH, beta=BETA,
        max_completion_length=MAX_COMPLETION, **extra,
    )  # fmt: skip
    loss, metrics = grpo_loss(
        logps, advantages, mask, config, old_logps=old, ref_logps=ref, entropy=entropy,
        num_items_in_batch=num_items, accumulation_steps=ACCUM,
    )  # fmt: skip
    loss.backward()
    ours = _grads(model)

    assert trl_metrics["clip_ratio/region_mean"] > 0, "the batch must exercise clipping"
    torch.testing.assert_close(loss.detach(), trl_loss.detach(), atol=1e-5, rtol=0)
    assert ours.keys() == trl_grads.keys()
    for name, grad in trl_grads.items():
        torch.testing.assert_close(ours[name], grad, atol=1e-5, rtol=1e-5, msg=name)
    for key in ("kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                "clip_ratio/low_min", "clip_ratio/high_max"):  # fmt: skip
        assert metrics[key] == pytest.approx(trl_metrics[key], abs=1e-5), key


def test_advantages_match_trl_rule() -> None:
    rewards = torch.tensor(REWARDS + [3.0, 1.0, 2.0])  # (9,)
    grouped = rewards.view(-1, GROUP)  # (3, 3)
    group_std = nanstd(grouped, dim=1).repeat_interleave(GROUP)  # (9,)
    for scale, std in (("group", group_std), ("batch", nanstd(rewards))):
        expected = (rewards - grouped.mean(1).repeat_interleave(GROUP)) / (std + 1e-4)  # (9,)
        ours, _ = group_advantages(rewards, GROUP, scale=scale)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
