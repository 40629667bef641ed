"""Supervised fine-tuning: cross-entropy on assistant tokens, AdamW, linear decay."""

from __future__ import annotations

import math
from typing import Any

import torch

from openrft.methods import SupervisedHyperparameters
from openrft.training._chat_data import TokenizedExample
from openrft.training._model import Policy, device, make_optimizer
from openrft.training._order import step_indices

__all__ = ["SupervisedMethod"]


def _pad(batch: list[TokenizedExample], pad_id: int) -> tuple[torch.Tensor, ...]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
    attention = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
    learn = torch.zeros((len(batch), width), dtype=torch.bool)  # (B, T)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        attention[i, :n] = 1
        learn[i, :n] = torch.tensor(e.loss_mask)
    dev = device()
    return ids.to(dev), attention.to(dev), learn.to(dev)


def _loss_and_accuracy(model: Any, batch: list[TokenizedExample], pad_id: int):
    ids, attention, learn = _pad(batch, pad_id)
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]  # (B, T-1, V)
    targets = ids[:, 1:]  # (B, T-1)
    mask = learn[:, 1:]  # (B, T-1): the token at t+1 is learned from position t
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="none"
    ).view_as(targets)  # (B, T-1)
    count = mask.sum().clamp(min=1)
    loss = (losses * mask).sum() / count
    correct = ((logits.argmax(-1) == targets) & mask).sum()
    return loss, (correct / count).item(), int(mask.sum())


class SupervisedMethod:
    """Parameters: `policy`; `train`/`valid` tokenized examples; `hp` (resolved);
    `seed` (orders each epoch); `learning_rate` (base rate x multiplier)."""

    best_metric = "valid_loss"
    higher_is_better = False

    def __init__(
        self,
        *,
        policy: Policy,
        train: list[TokenizedExample],
        valid: list[TokenizedExample],
        hp: SupervisedHyperparameters,
        seed: int,
        learning_rate: float,
    ) -> None:
        assert isinstance(hp.batch_size, int) and isinstance(hp.n_epochs, int)
        self.policy = policy
        self.train = train
        self.valid = valid
        self.batch_size = hp.batch_size
        self.seed = seed
        self.learning_rate = learning_rate
        self.steps_per_epoch = math.ceil(len(train) / self.batch_size)
        self.total_steps = hp.n_epochs * self.steps_per_epoch
        self.trained_tokens = 0
        self.pad_id = policy.tokenizer.pad_token_id
        params = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, learning_rate)

    def _batch(self, step: int) -> list[TokenizedExample]:
        picked = step_indices(
            n=len(self.train), batch_size=self.batch_size, step=step, seed=self.seed
        )
        return [self.train[i] for i in picked]

    def _lr(self, step: int) -> float:
        return self.learning_rate * (1.0 - 0.9 * (step - 1) / max(1, self.total_steps - 1))

    def train_step(self, step: int) -> dict[str, Any]:
        model = self.policy.model
        model.train()
        lr = self._lr(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, accuracy, tokens = _loss_and_accuracy(model, self._batch(step), self.pad_id)
        loss.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.trained_tokens += tokens
        return {
            "train_loss": loss.item(),
            "train_mean_token_accuracy": accuracy,
            "actor_grad_norm": float(grad_norm),
            "actor_lr": lr,
        }

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, Any]:
        if not self.valid:
            return {}
        self.policy.model.eval()
        total_loss, total_correct, total_tokens = 0.0, 0.0, 0
        for i in range(0, len(self.valid), self.batch_size):
            batch = self.valid[i : i + self.batch_size]
            loss, accuracy, tokens = _loss_and_accuracy(self.policy.model, batch, self.pad_id)
            total_loss += loss.item() * tokens
            total_correct += accuracy * tokens
            total_tokens += tokens
        n = max(1, total_tokens)
        return {"valid_loss": total_loss / n, "valid_mean_token_accuracy": total_correct / n}

    def step_message(self, step: int, metrics: dict[str, Any]) -> str:
        text = f"Step {step}/{self.total_steps}: training loss={metrics['train_loss']:.4f}"
        if "valid_loss" in metrics:
            text += f", validation loss={metrics['valid_loss']:.4f}"
        return text

    def should_stop_early(self, history: list[dict[str, Any]]) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
