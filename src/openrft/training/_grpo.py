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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from openrft.graders import Grader, GradeResult, GradingService, Sample
from openrft.inference import Completion, Engine, SamplingParams, cache_keyword
from openrft.methods import ReinforcementHyperparameters
from openrft.training._advantages import group_advantages, zero_std_groups
from openrft.training._data_parallel import Workers
from openrft.training._losses import PolicyLossConfig
from openrft.training._model import Policy, make_optimizer
from openrft.training._order import step_indices
from openrft.training._policy_update import RolloutBatch, apply_gradients, shard_backward

__all__ = ["GraderFailure", "Prompt", "ReinforcementMethod"]


class GraderFailure(RuntimeError):
    """Most samples of a step could not be graded: training on zeros would be silent harm."""


@dataclass
class Prompt:
    messages: list[dict[str, Any]]
    item: dict[str, Any]  # every field of the data line but `messages`
    ids: list[int]


class _Outcome(NamedTuple):
    """What the step's metrics need of one sample, exchanged between data-parallel ranks."""

    score: float
    length: int
    truncated: bool
    error: bool


def _sample_seed(seed: int, step: int, index: int) -> int:
    """Decision 13: randomness keyed by (seed, step, prompt index), not by worker layout."""
    return (seed * 1_000_003 + step * 10_007 + index) % 2_147_483_647


class ReinforcementMethod:
    """Parameters: `policy`; `engine` (sampling on the policy's weights); `grading` and
    `grader`; `train`/`valid` prompts; `hp` (resolved); `seed`; `learning_rate`;
    `reference` (frozen starting weights, full fine-tuning with beta > 0 only);
    `workers` (this process's data-parallel rank: it trains on its share of each step)."""

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
        workers: Workers | None = None,
    ) -> None:
        assert isinstance(hp.batch_size, int) and isinstance(hp.n_epochs, int)
        assert isinstance(hp.group_size, int) and isinstance(hp.max_completion_tokens, int)
        self.policy, self.engine, self.grading, self.grader = policy, engine, grading, grader
        self.train, self.valid, self.hp, self.seed = train, valid, hp, seed
        self.learning_rate = learning_rate
        self.reference = reference
        self.workers = workers or Workers()
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
        self.cache_kw = cache_keyword(policy.model)
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
        # This rank's share of the step's B prompts; whole groups, so advantages are unchanged.
        lo, hi = self.workers.shard(len(picked))
        prompts = [self.train[i] for i in picked[lo:hi]]
        groups = self.sample(prompts, step, self.group, indices=range(lo, hi), entropies=True)
        sampled = time.perf_counter()
        grades = self.score(prompts, groups)  # b*G results, group-major
        if self.hp.dynamic_sampling:
            self._replace_flat_groups(step, prompts, groups, grades, first=lo)
        scored = time.perf_counter()
        flat = [c for group in groups for c in group]
        outcomes = self.workers.gather(
            [
                _Outcome(g.score, len(c.token_ids), c.truncated, g.errors.any)
                for c, g in zip(flat, grades, strict=True)
            ]
        )  # the whole step's B*G, group-major
        rewards = torch.tensor([o.score for o in outcomes], dtype=torch.float32)  # (B*G,)
        advantages, stats = group_advantages(rewards, self.group, scale=self.hp.scale_rewards)
        mine = advantages[lo * self.group : hi * self.group]  # (b*G,)
        loss_metrics = self.policy_update(prompts, flat, mine)
        done = time.perf_counter()
        self._keep_rollouts(step, prompts, groups, grades, first=lo)
        return self._step_metrics(
            stats, outcomes, loss_metrics, timing=(started, sampled, scored, done)
        )

    def sample(
        self,
        prompts: list[Prompt],
        step: int,
        n: int,
        *,
        indices: Sequence[int] | None = None,
        entropies: bool = False,
    ) -> list[list[Completion]]:
        """`n` completions per prompt (b lists of n); prompt k draws from the stream of
        `indices[k]` (its index in the step's whole batch: the same on any rank), by default
        its position. `entropies`: with the sampler's token entropies, for training."""
        if not prompts:
            return []
        self.policy.model.eval()
        keys = range(len(prompts)) if indices is None else indices
        seeds = [_sample_seed(self.seed, step, k) for k in keys]
        return self.engine.generate_groups(
            [p.ids for p in prompts], n, self.sampling, seeds=seeds, adapter=self.adapter,
            entropies=entropies,
        )  # fmt: skip

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
        grades = []
        if samples:
            grades = self._loop.run_until_complete(
                self.grading.grade_batch(self.grader, samples, items, grade_truncated=True)
            )
        failed = [g for g in grades if g.errors.any and not g.errors.truncated_observation_error]
        # Counted over every rank's samples, so all ranks stop together or none does.
        counts = self.workers.gather(
            [(len(failed), len(grades), failed[0].errors.as_dict() if failed else None)]
        )
        n_failed, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
        if n_failed > self.hp.grader_error_threshold * n:
            example = next(c[2] for c in counts if c[2] is not None)
            flags = [k for k, v in example.items() if v is True]
            raise GraderFailure(
                f"The grader failed for {n_failed} of {n} samples in one step "
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
        *,
        first: int = 0,
    ) -> None:
        """DAPO's dynamic sampling (arXiv:2503.14476 §3.2): a group whose rewards are all
        equal carries no signal, so it is replaced, in place, by the group of another
        prompt; at most two rounds, so a hard batch cannot stall the step. Every rank
        draws the same replacements from the whole step's rewards and samples those that
        fall in its share (which starts at the step's prompt `first`)."""
        rng = random.Random(_sample_seed(self.seed, step, 7919))
        g = self.group
        for round_ in range(1, 3):
            rewards = torch.tensor(self.workers.gather([x.score for x in grades]))  # (B*G,)
            flat = [i for i, z in enumerate(zero_std_groups(rewards, g).tolist()) if z]
            if not flat:
                return
            extra = [self.train[rng.randrange(len(self.train))] for _ in flat]
            base = round_ * len(self.train)  # seeds apart from the step's own prompts
            mine = [k for k, i in enumerate(flat) if first <= i < first + len(prompts)]
            new_groups = self.sample(
                [extra[k] for k in mine], step, g, indices=[base + k for k in mine], entropies=True
            )
            new_grades = self.score([extra[k] for k in mine], new_groups)
            for m, k in enumerate(mine):
                i = flat[k] - first
                prompts[i], groups[i] = extra[k], new_groups[m]
                grades[i * g : (i + 1) * g] = new_grades[m * g : (m + 1) * g]

    def policy_update(
        self, prompts: list[Prompt], flat: list[Completion], advantages: torch.Tensor
    ) -> dict[str, float]:
        """One optimizer step on this rank's share (`prompts`, their completions `flat` and
        advantages `(b*G,)`), gradients summed over the ranks."""
        model = self.policy.model
        model.train()
        batch = None
        if flat:
            batch = RolloutBatch(
                [p.ids for p in prompts],
                [c.token_ids for c in flat],
                pad_id=self.policy.tokenizer.pad_token_id,
                temperature=self.hp.temperature,
                cache_kw=self.cache_kw,
                entropies=[c.token_entropies for c in flat],
            )
        metrics, totals = shard_backward(
            model,
            batch,
            advantages,
            self.loss_config,
            self.workers,
            stop_ids=self.stop_ids if self.hp.mask_truncated_completions else None,
            ref_logps=self._reference_logps(batch) if batch is not None else None,  # (N, C)
        )
        params = [p for p in model.parameters() if p.requires_grad]
        metrics["grad_norm"] = apply_gradients(params, self.optimizer, self.workers)
        self.optimizer.zero_grad(set_to_none=True)
        self.trained_tokens += totals.tokens
        return metrics

    @torch.no_grad()
    def _reference_logps(self, batch: RolloutBatch) -> torch.Tensor | None:
        if self.hp.beta == 0.0:
            return None
        if self.reference is not None:
            return batch.logprobs(self.reference, with_entropy=False)[0]
        with self.policy.model.disable_adapter():
            return batch.logprobs(self.policy.model, with_entropy=False)[0]

    # -- metrics, evaluation, rollouts ----------------------------------------------------
    def _step_metrics(
        self,
        stats: dict[str, float],
        outcomes: list[_Outcome],
        loss: dict[str, float],
        timing: tuple[float, float, float, float],
    ) -> dict[str, Any]:
        started, sampled, scored, done = timing
        lengths = [o.length for o in outcomes]
        errors = sum(1 for o in outcomes if o.error)
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
            "response_length_clip_ratio": sum(o.truncated for o in outcomes) / len(outcomes),
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
        lo, hi = self.workers.shard(len(self.valid))
        mine = self.valid[lo:hi]
        groups = self.sample(mine, -step, self.hp.eval_samples, indices=range(lo, hi))
        scores = self.workers.gather([g.score for g in self.score(mine, groups)])
        mean = sum(scores) / len(scores)
        return {"valid_reward_mean": mean}

    def _keep_rollouts(
        self,
        step: int,
        prompts: list[Prompt],
        groups: list[list[Completion]],
        grades: list[GradeResult],
        *,
        first: int = 0,
    ) -> None:
        """The first `rollouts_per_step` prompts of the step with their samples, gathered
        from the ranks holding them (this one's share starts at prompt `first`)."""
        keep = max(0, self.hp.rollouts_per_step - first)
        rows = []
        for i, (prompt, group) in enumerate(zip(prompts[:keep], groups[:keep], strict=False)):
            for j, completion in enumerate(group):
                grade = grades[i * self.group + j]
                rows.append(
                    {
                        "step": step,
                        "prompt_index": first + i,
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
        self.rollouts = self.workers.gather(rows)

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
