"""GRPO: sample a group per prompt, score it, advantages, clipped policy-gradient step.

One step reads top to bottom (`train_step`): sample → score → advantages → loss → step.
Sampling goes through the inference engine built on the very weights being trained
(Decision 3); the reference policy is the model with its LoRA adapter switched off,
or a frozen copy of the starting weights under full fine-tuning.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import torch

from openrft.graders import Grader, GradeResult, GradingService, Sample
from openrft.inference import Completion, Engine, SamplingParams
from openrft.methods import ReinforcementHyperparameters
from openrft.training._advantages import group_advantages, zero_std_groups
from openrft.training._logprobs import completion_logprobs
from openrft.training._losses import PolicyLossConfig, grpo_loss, mask_truncated
from openrft.training._model import Policy, device, make_optimizer
from openrft.training._order import step_indices

__all__ = ["GraderFailure", "Prompt", "ReinforcementMethod"]


class GraderFailure(RuntimeError):
    """Most samples of a step could not be graded: training on zeros would be silent harm."""


@dataclass
class Prompt:
    messages: list[dict[str, Any]]
    item: dict[str, Any]  # every field of the data line but `messages`
    ids: list[int]


def _sample_seed(seed: int, step: int, index: int) -> int:
    """Decision 13: randomness keyed by (seed, step, prompt index), not by worker layout."""
    return (seed * 1_000_003 + step * 10_007 + index) % 2_147_483_647


def _pad_batch(prompts: list[list[int]], completions: list[list[int]], pad: int):
    """Prompts left-padded to P, completions right-padded to C: `(N, P + C)` and masks."""
    p = max(len(x) for x in prompts)
    c = max(len(x) for x in completions)
    n = len(prompts)
    ids = torch.full((n, p + c), pad, dtype=torch.long)  # (N, P+C)
    attention = torch.zeros((n, p + c), dtype=torch.long)  # (N, P+C)
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, p - len(prompt) : p] = torch.tensor(prompt)
        ids[i, p : p + len(completion)] = torch.tensor(completion, dtype=torch.long)
        attention[i, p - len(prompt) : p + len(completion)] = 1
    completion_mask = attention[:, p:].clone()  # (N, C)
    return ids.to(device()), attention.to(device()), completion_mask.to(device()), c


class ReinforcementMethod:
    """Parameters: `policy`; `engine` (sampling on the policy's weights); `grading` and
    `grader`; `train`/`valid` prompts; `hp` (resolved); `seed`; `learning_rate`;
    `reference` (frozen starting weights, full fine-tuning with beta > 0 only)."""

    best_metric = "valid_reward_mean"
    higher_is_better = True

    def __init__(
        self,
        *,
        policy: Policy,
        engine: Engine,
        grading: GradingService,
        grader: Grader,
        train: list[Prompt],
        valid: list[Prompt],
        hp: ReinforcementHyperparameters,
        seed: int,
        learning_rate: float,
        reference: Any = None,
        response_format: dict[str, Any] | None = None,
    ) -> None:
        assert isinstance(hp.batch_size, int) and isinstance(hp.n_epochs, int)
        assert isinstance(hp.group_size, int) and isinstance(hp.max_completion_tokens, int)
        self.policy, self.engine, self.grading, self.grader = policy, engine, grading, grader
        self.train, self.valid, self.hp, self.seed = train, valid, hp, seed
        self.learning_rate = learning_rate
        self.reference = reference
        self.group = hp.group_size
        self.total_steps = hp.n_epochs * -(-len(train) // hp.batch_size)
        if hp.max_steps is not None:
            self.total_steps = min(self.total_steps, hp.max_steps)
        self.trained_tokens = 0
        self.rollouts: list[dict[str, Any]] = []  # the step's kept samples, read by the runner
        self.loss_config = PolicyLossConfig(
            loss_type=hp.loss_type,
            epsilon=hp.epsilon,
            epsilon_high=hp.epsilon_high,
            beta=hp.beta,
            max_completion_length=hp.max_completion_tokens,
        )
        self.sampling = SamplingParams(
            temperature=hp.temperature,
            top_p=hp.top_p,
            max_tokens=hp.max_completion_tokens,
            response_format=response_format,
        )
        self.stop_ids = engine.stop_token_ids
        # A LoRA policy samples through its trainable adapter; full fine-tuning has none.
        self.adapter = None if policy.full else policy.model.active_adapter
        params = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, learning_rate)
        # One event loop for the job: the grading service keeps its HTTP client and
        # limits per loop, so a fresh loop per step would rebuild them every step.
        self._loop = asyncio.new_event_loop()

    # -- the step -----------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, Any]:
        started = time.perf_counter()
        picked = step_indices(
            n=len(self.train), batch_size=self.hp.batch_size, step=step, seed=self.seed
        )
        prompts = [self.train[i] for i in picked]
        groups = self.sample(prompts, step, self.group)  # B lists of G completions
        sampled = time.perf_counter()
        grades = self.score(prompts, groups)  # B*G results, group-major
        if self.hp.dynamic_sampling:
            self._replace_flat_groups(step, prompts, groups, grades)
        scored = time.perf_counter()
        rewards = torch.tensor([g.score for g in grades], dtype=torch.float32)  # (B*G,)
        advantages, stats = group_advantages(rewards, self.group, scale=self.hp.scale_rewards)
        flat = [c for group in groups for c in group]
        loss_metrics = self.policy_update(prompts, flat, advantages)
        done = time.perf_counter()
        self._keep_rollouts(step, prompts, groups, grades)
        return self._step_metrics(
            stats, flat, grades, loss_metrics, timing=(started, sampled, scored, done)
        )

    def sample(
        self, prompts: list[Prompt], step: int, n: int, *, first_index: int = 0
    ) -> list[list[Completion]]:
        self.policy.model.eval()
        seeds = [_sample_seed(self.seed, step, first_index + i) for i in range(len(prompts))]
        return self.engine.generate_groups(
            [p.ids for p in prompts], n, self.sampling, seeds=seeds, adapter=self.adapter
        )

    def score(self, prompts: list[Prompt], groups: list[list[Completion]]) -> list[GradeResult]:
        samples, items = [], []
        for prompt, group in zip(prompts, groups, strict=True):
            for completion in group:
                samples.append(
                    Sample(
                        output_text=completion.text,
                        messages=prompt.messages,
                        finish_reason=completion.finish_reason,
                    )
                )
                items.append(prompt.item)
        grades = self._loop.run_until_complete(
            self.grading.grade_batch(self.grader, samples, items, grade_truncated=True)
        )
        failed = [g for g in grades if g.errors.any and not g.errors.truncated_observation_error]
        if len(failed) > self.hp.grader_error_threshold * len(grades):
            example = failed[0].errors.as_dict()
            flags = [k for k, v in example.items() if v is True]
            raise GraderFailure(
                f"The grader failed for {len(failed)} of {len(grades)} samples in one step "
                f"(errors: {', '.join(flags)}; details: "
                f"{example.get('python_grader_runtime_error_details') or example.get('model_grader_server_error_details') or 'none'})."
            )
        return grades

    def _replace_flat_groups(
        self,
        step: int,
        prompts: list[Prompt],
        groups: list[list[Completion]],
        grades: list[GradeResult],
    ) -> None:
        """DAPO's dynamic sampling (arXiv:2503.14476 §3.2): a group whose rewards are all
        equal carries no signal, so it is replaced, in place, by the group of another
        prompt; at most two rounds, so a hard batch cannot stall the step."""
        rng = random.Random(_sample_seed(self.seed, step, 7919))
        g = self.group
        for round_ in range(1, 3):
            rewards = torch.tensor([x.score for x in grades])  # (B*G,)
            flat = [i for i, z in enumerate(zero_std_groups(rewards, g).tolist()) if z]
            if not flat:
                return
            extra = [self.train[rng.randrange(len(self.train))] for _ in flat]
            first = round_ * len(self.train)  # seeds apart from the step's own prompts
            new_groups = self.sample(extra, step, g, first_index=first)
            new_grades = self.score(extra, new_groups)
            for k, i in enumerate(flat):
                prompts[i], groups[i] = extra[k], new_groups[k]
                grades[i * g : (i + 1) * g] = new_grades[k * g : (k + 1) * g]

    def policy_update(
        self, prompts: list[Prompt], flat: list[Completion], advantages: torch.Tensor
    ) -> dict[str, float]:
        model = self.policy.model
        model.train()
        prompt_ids = [prompts[i // self.group].ids for i in range(len(flat))]
        ids, attention, completion_mask, c = _pad_batch(
            prompt_ids, [x.token_ids for x in flat], self.policy.tokenizer.pad_token_id
        )
        if self.hp.mask_truncated_completions:
            completion_ids = ids[:, -c:]  # (N, C)
            completion_mask = mask_truncated(completion_ids, completion_mask, self.stop_ids)
        ref = self._reference_logps(ids, attention, c)  # (N, C) or None
        logps, entropy = completion_logprobs(
            model, ids, attention, c, temperature=self.hp.temperature
        )
        loss, metrics = grpo_loss(
            logps,
            advantages.to(logps.device),
            completion_mask,
            self.loss_config,
            ref_logps=ref,
            entropy=entropy,
        )
        loss.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.trained_tokens += int(completion_mask.sum())
        return metrics

    @torch.no_grad()
    def _reference_logps(self, ids: torch.Tensor, attention: torch.Tensor, c: int):
        if self.hp.beta == 0.0:
            return None
        if self.reference is not None:
            return completion_logprobs(
                self.reference,
                ids,
                attention,
                c,
                temperature=self.hp.temperature,
                with_entropy=False,
            )[0]
        with self.policy.model.disable_adapter():
            return completion_logprobs(
                self.policy.model,
                ids,
                attention,
                c,
                temperature=self.hp.temperature,
                with_entropy=False,
            )[0]

    # -- metrics, evaluation, rollouts ----------------------------------------------------
    def _step_metrics(
        self,
        stats: dict[str, float],
        flat: list[Completion],
        grades: list[GradeResult],
        loss: dict[str, float],
        timing: tuple[float, float, float, float],
    ) -> dict[str, Any]:
        started, sampled, scored, done = timing
        lengths = [len(c.token_ids) for c in flat]
        errors = sum(1 for g in grades if g.errors.any)
        reward = stats["reward_mean"]
        return {
            # Bedrock's names
            "critic_rewards_mean": reward,
            "critic_advantages_mean": stats["advantage_mean"],
            "actor_pg_loss": loss["pg_loss"],
            "actor_entropy": loss.get("entropy", 0.0),
            "actor_grad_norm": loss["grad_norm"],
            "response_length_mean": sum(lengths) / len(lengths),
            # ours
            "critic_rewards_std": stats["reward_std"],
            "actor_kl": loss.get("kl", 0.0),
            "actor_pg_clipfrac": loss.get("clip_ratio/region_mean", 0.0),
            "actor_lr": self.learning_rate,
            "frac_reward_zero_std": stats["frac_reward_zero_std"],
            "response_length_clip_ratio": sum(c.truncated for c in flat) / len(flat),
            "grader_errors": errors,
            "step_time_s": done - started,
            "tokens_per_s": sum(lengths) / max(1e-9, sampled - started),
            # OpenAI's
            "train_reward_mean": reward,
            "scores": {
                "graders": [
                    {
                        "name": self.grader.name,
                        "type": self.grader.type,
                        "train_reward_mean": reward,
                    }
                ],
                "train_reward_mean": reward,
            },
            "timing": {
                "step": {
                    "sampling": sampled - started,
                    "grading": scored - sampled,
                    "training": done - scored,
                    "full_iteration": done - started,
                }
            },
        }

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, Any]:
        if not self.valid:
            return {}
        assert isinstance(self.hp.eval_samples, int)
        groups = self.sample(self.valid, -step, self.hp.eval_samples)
        grades = self.score(self.valid, groups)
        mean = sum(g.score for g in grades) / len(grades)
        return {"valid_reward_mean": mean}

    def _keep_rollouts(
        self,
        step: int,
        prompts: list[Prompt],
        groups: list[list[Completion]],
        grades: list[GradeResult],
    ) -> None:
        keep = self.hp.rollouts_per_step
        self.rollouts = []
        for i, (prompt, group) in enumerate(zip(prompts[:keep], groups[:keep], strict=False)):
            for j, completion in enumerate(group):
                grade = grades[i * self.group + j]
                self.rollouts.append(
                    {
                        "step": step,
                        "prompt_index": i,
                        "sample_index": j,
                        "messages": prompt.messages,
                        "item": prompt.item,
                        "completion": completion.text,
                        "finish_reason": completion.finish_reason,
                        "reward": grade.score,
                        "grader": {
                            "name": grade.name,
                            "type": grade.type,
                            "errors": {k: v for k, v in grade.errors.as_dict().items() if v},
                            "sub_rewards": grade.sub_rewards,
                            "metrics": grade.metrics,
                        },
                    }
                )

    def step_message(self, step: int, metrics: dict[str, Any]) -> str:
        return f"Step {step}/{self.total_steps}: training metrics"

    def should_stop_early(self, history: list[dict[str, Any]]) -> bool:
        """Bedrock's early stopping: validation reward not improved for `patience` evaluations."""
        if not self.hp.early_stopping:
            return False
        scores = [h["valid_reward_mean"] for h in history if "valid_reward_mean" in h]
        patience = self.hp.early_stopping_patience
        if len(scores) <= patience:
            return False
        return max(scores[-patience:]) <= max(scores[:-patience])

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    def close(self) -> None:
        """Close the grading service's clients and sandboxes, then the event loop."""
        self._loop.run_until_complete(self.grading.aclose())
        self._loop.close()
