"""GRPO math checked by hand: advantages, log-probabilities, masks, clipping, KL, aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from openrft.training import _logprobs
from openrft.training._advantages import group_advantages, zero_std_groups
from openrft.training._logprobs import token_entropy, token_logprobs
from openrft.training._losses import PolicyLossConfig, grpo_loss, k3_kl, mask_truncated

# -- advantages ---------------------------------------------------------------------------------


def test_group_advantages_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0, 2.0])  # (4,): groups [1, 0] and [2, 2]
    advantages, stats = group_advantages(rewards, 2)
    half = 0.5 / (math.sqrt(0.5) + 1e-4)  # unbiased std of [1, 0] is sqrt(1/2)
    torch.testing.assert_close(advantages, torch.tensor([half, -half, 0.0, 0.0]))
    assert stats["frac_reward_zero_std"] == 0.5
    assert stats["reward_mean"] == pytest.approx(1.25)
    assert stats["reward_std"] == pytest.approx(torch.tensor([1.0, 0.0, 2.0, 2.0]).std().item())
    assert stats["advantage_mean"] == pytest.approx(0.0, abs=1e-7)


def test_all_equal_groups_have_zero_advantage_and_are_counted() -> None:
    rewards = torch.tensor([0.3, 0.3, 0.3, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0])  # (9,)
    for scale in ("group", "batch", "none"):
        advantages, stats = group_advantages(rewards, 3, scale=scale)
        assert advantages[:6].abs().max() == 0.0
        assert stats["frac_reward_zero_std"] == pytest.approx(2 / 3)
    assert zero_std_groups(rewards, 3).tolist() == [True, True, False]


def test_scale_none_and_batch() -> None:
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])  # (4,)
    none, _ = group_advantages(rewards, 2, scale="none")
    torch.testing.assert_close(none, torch.tensor([0.5, -0.5, 1.0, -1.0]))
    batch, _ = group_advantages(rewards, 2, scale="batch")
    torch.testing.assert_close(batch, none / (rewards.std() + 1e-4))


def test_group_of_one_and_bad_arguments() -> None:
    advantages, stats = group_advantages(torch.tensor([0.2, 0.9]), 1)
    assert advantages.tolist() == [0.0, 0.0] and stats["frac_reward_zero_std"] == 1.0
    with pytest.raises(AssertionError, match="groups of 2"):
        group_advantages(torch.tensor([1.0, 2.0, 3.0]), 2)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.tensor([1.0, 2.0]), 2, scale="global")  # type: ignore[arg-type]


# -- log-probabilities and entropy --------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so the block loop is exercised on a small tensor."""
    monkeypatch.setattr(_logprobs, "_BLOCK_ELEMENTS", 3 * 11)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_equal_log_softmax_gather(temperature: float) -> None:
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))  # (B, T, V)
    tokens = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))  # (B, T)
    expected = (logits / temperature).log_softmax(-1).gather(-1, tokens.unsqueeze(-1))  # (B, T, 1)
    torch.testing.assert_close(token_logprobs(logits, tokens, temperature), expected.squeeze(-1))
    bf16 = token_logprobs(logits.bfloat16(), tokens, temperature)  # (B, T), computed in fp32
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, expected.squeeze(-1), atol=0.05, rtol=0)


@pytest.mark.usefixtures("small_blocks")
def test_token_logprobs_gradient_matches_naive() -> None:
    logits = torch.randn(2, 4, 11, requires_grad=True)  # (B, T, V)
    tokens = torch.randint(0, 11, (2, 4))  # (B, T)
    (grad,) = torch.autograd.grad(token_logprobs(logits, tokens, 0.5).sum(), logits)
    naive = (logits / 0.5).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).sum()  # ()
    (expected,) = torch.autograd.grad(naive, logits)
    torch.testing.assert_close(grad, expected)


@pytest.mark.usefixtures("small_blocks")
def test_entropy_of_uniform_logits_is_log_vocab_size() -> None:
    entropy = token_entropy(torch.full((2, 3, 11), 4.2))  # (B, T)
    torch.testing.assert_close(entropy, torch.full((2, 3), math.log(11)))
    logits = torch.randn(2, 3, 11)  # (B, T, V)
    probs = (logits / 2.0).softmax(-1)  # (B, T, V)
    expected = -(probs * probs.log()).sum(-1)  # (B, T)
    torch.testing.assert_close(token_entropy(logits, temperature=2.0), expected)


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(torch.zeros(1, 1, 3), torch.zeros(1, 1, dtype=torch.long), 0.0)


# -- masks --------------------------------------------------------------------------------------


def test_mask_truncated_drops_completions_without_a_stop_token() -> None:
    ids = torch.tensor([[4, 9, 0, 0], [4, 5, 6, 7], [4, 8, 9, 0], [0, 0, 0, 0]])  # (B, T)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]])  # (B, T)
    kept = mask_truncated(ids, mask, [9, 8])  # (B, T)
    assert kept.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]


def test_masked_tokens_change_neither_loss_nor_gradient() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])  # (B, T)
    old = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]])  # (B, T)
    advantages = torch.tensor([1.0, -1.0])  # (B,)
    config = PolicyLossConfig(loss_type="grpo", beta=0.1)
    results = []
    for pad_value in (0.0, 50.0):
        logps = torch.tensor(
            [[-1.1, -1.9, pad_value], [-0.4, pad_value, pad_value]], requires_grad=True
        )
        loss, _ = grpo_loss(logps, advantages, mask, config, old_logps=old, ref_logps=old)
        (grad,) = torch.autograd.grad(loss, logps)
        results.append((loss.detach(), grad * mask))
    torch.testing.assert_close(results[0], results[1])


# -- clipping, KL, aggregation ------------------------------------------------------------------


def _ratio_gradient(ratio: float, advantage: float, **config: float) -> float:
    """d loss / d logp for one token whose importance ratio is `ratio`."""
    logps = torch.tensor([[math.log(ratio)]], requires_grad=True)  # (1, 1)
    loss, _ = grpo_loss(
        logps,
        torch.tensor([advantage]),
        torch.ones(1, 1),
        PolicyLossConfig(**config),
        old_logps=torch.zeros(1, 1),
    )
    (grad,) = torch.autograd.grad(loss, logps)
    return grad.item()


def test_epsilon_high_is_asymmetric() -> None:
    # ratio 1.25 with A > 0: clipped at ε_high = 0.2, still learning at ε_high = 0.28 (DAPO clip-higher)
    assert _ratio_gradient(1.25, 1.0, epsilon=0.2) == 0.0
    assert _ratio_gradient(1.25, 1.0, epsilon=0.2, epsilon_high=0.28) == pytest.approx(-1.25)
    # ratio 0.75 with A < 0 is under 1 - ε_low either way; with A > 0 the low clip does not apply
    assert _ratio_gradient(0.75, -1.0, epsilon=0.2, epsilon_high=0.28) == 0.0
    assert _ratio_gradient(0.75, 1.0, epsilon=0.2, epsilon_high=0.28) == pytest.approx(-0.75)


def test_clip_metrics_count_low_and_high_separately() -> None:
    logps = torch.log(torch.tensor([[1.25, 1.0], [0.7, 1.0]]))  # (B, T) ratios against old = 0
    _, metrics = grpo_loss(
        logps,
        torch.tensor([1.0, -1.0]),
        torch.ones(2, 2),
        PolicyLossConfig(),
        old_logps=torch.zeros(2, 2),
    )
    assert metrics["clip_ratio/high_mean"] == 0.25 and metrics["clip_ratio/low_mean"] == 0.25
    assert metrics["clip_ratio/region_mean"] == 0.5
    assert metrics["clip_ratio/high_max"] == 0.5 and metrics["clip_ratio/low_min"] == 0.0


def test_kl_is_zero_when_policy_equals_reference() -> None:
    logps = torch.tensor([[-1.0, -2.0], [-0.3, -4.0]], requires_grad=True)  # (B, T)
    advantages, mask = torch.tensor([0.5, -0.5]), torch.ones(2, 2)  # (B,), (B, T)
    with_kl, metrics = grpo_loss(
        logps, advantages, mask, PolicyLossConfig(beta=0.5), ref_logps=logps.detach()
    )
    without, _ = grpo_loss(logps, advantages, mask, PolicyLossConfig())
    assert metrics["kl"] == 0.0
    torch.testing.assert_close(with_kl, without)
    assert k3_kl(torch.tensor([-1.0]), torch.tensor([-2.0])).item() > 0  # and positive elsewhere


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", (-1.0 + 2.0) / 2),  # mean of per-sequence means -1 and +2
        ("bnpo", (-1.0 + 3 * 2.0) / 4),  # token mean over the micro-batch
        ("dr_grpo", (-1.0 + 3 * 2.0) / (2 * 8)),  # B * max_completion_length
        ("dapo", (-1.0 + 3 * 2.0) / 10),  # active tokens of the whole step
    ],
)
def test_aggregation_by_hand(loss_type: str, expected: float) -> None:
    logps = torch.zeros(2, 4)  # (B, T), ratio 1: the per-token loss is -A
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]])  # (B, T)
    config = PolicyLossConfig(loss_type=loss_type, max_completion_length=8)  # type: ignore[arg-type]
    loss, metrics = grpo_loss(logps, torch.tensor([1.0, -2.0]), mask, config, num_items_in_batch=10)
    assert loss.item() == pytest.approx(expected)
    assert metrics["pg_loss"] == pytest.approx(expected) == metrics["loss"]
    halved, _ = grpo_loss(
        logps, torch.tensor([1.0, -2.0]), mask, config, num_items_in_batch=10, accumulation_steps=2
    )
    assert halved.item() == pytest.approx(expected if loss_type == "dapo" else expected / 2)


def test_config_is_validated_once() -> None:
    with pytest.raises(ValueError, match="loss_type"):
        PolicyLossConfig(loss_type="ppo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_completion_length"):
        PolicyLossConfig(loss_type="dr_grpo")
    with pytest.raises(ValueError, match="delta"):
        PolicyLossConfig(delta=0.9)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), PolicyLossConfig(beta=0.1))


@pytest.mark.parametrize("block_elements", [1 << 24, 3 * 50, 50])
def test_blocked_logprobs_and_entropy_match_direct(monkeypatch, block_elements: int) -> None:
    """Whole-sequence blocks, pieces of sequences, and single rows all give the same values."""
    monkeypatch.setattr(_logprobs, "_BLOCK_ELEMENTS", block_elements)
    logits = torch.randn(3, 6, 50)[:, :-1]  # (3, 5, 50), a non-contiguous slice
    tokens = torch.randint(0, 50, (3, 5))
    direct = torch.log_softmax(logits / 0.7, -1)
    expected = direct.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(_logprobs.token_logprobs(logits, tokens, 0.7), expected)
    entropy = -(direct.exp() * direct).sum(-1)
    torch.testing.assert_close(_logprobs.token_entropy(logits, 0.7), entropy)
