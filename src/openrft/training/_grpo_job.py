"""Assembling a reinforcement job: data, policy, engine, grader, then the shared loop."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import torch

from openrft.config import Settings
from openrft.datasets import iter_examples
from openrft.graders import GradingService, grader_settings
from openrft.inference import Engine, TextEmbedder
from openrft.methods import ReinforcementHyperparameters, base_learning_rate, resolve_reinforcement
from openrft.store import JobRow, Store
from openrft.training._chat_data import prompt_ids
from openrft.training._data_parallel import Workers
from openrft.training._grpo import GraderFailure, Prompt, ReinforcementMethod
from openrft.training._loop import run_loop
from openrft.training._model import load_policy
from openrft.training._runtime import JobRuntime

__all__ = ["run_reinforcement"]


def _prompts(
    runtime: JobRuntime,
    store: Store,
    job: JobRow,
    file_id: str | None,
    tokenizer: Any,
    limit: int,
    what: str,
) -> list[Prompt]:
    if not file_id:
        return []
    prompts = [
        Prompt(
            messages=row["messages"],
            item={k: v for k, v in row.items() if k != "messages"},
            ids=prompt_ids(tokenizer, row["messages"]),
        )
        for row in iter_examples(store.files.path(store.files.get(job.project, file_id)))
    ]
    return runtime.drop_too_long(prompts, length=lambda p: len(p.ids), limit=limit, what=what)


def _grading(settings: Settings) -> GradingService:
    path = settings.resolved_embedding_model
    return GradingService(
        settings=grader_settings(settings), embedder=TextEmbedder(path) if path else None
    )


def run_reinforcement(
    runtime: JobRuntime, store: Store, settings: Settings, workers: Workers | None = None
) -> str:
    job = runtime.job
    body = job.method["reinforcement"]
    raw = ReinforcementHyperparameters.model_validate(body["hyperparameters"])
    torch.manual_seed(job.seed)
    policy = load_policy(
        store,
        job.model,
        fine_tuning_type=raw.fine_tuning_type,
        lora_rank=raw.lora_rank,
        lora_alpha=raw.lora_alpha,
    )
    context = getattr(policy.model.config, "max_position_embeddings", 2048)
    limit = min(raw.max_prompt_length, context - 1)
    train = _prompts(runtime, store, job, job.training_file, policy.tokenizer, limit, "training")
    valid = _prompts(
        runtime, store, job, job.validation_file, policy.tokenizer, limit, "validation"
    )
    hp = resolve_reinforcement(raw, n_examples=len(train))
    assert isinstance(hp.max_completion_tokens, int)
    if limit + hp.max_completion_tokens > context:
        hp = hp.model_copy(
            update={"max_completion_tokens": max(1, context - max(len(p.ids) for p in train))}
        )
    runtime.update(
        method={**job.method, "reinforcement": {**body, "hyperparameters": hp.model_dump()}}
    )
    reference = None
    if hp.beta > 0 and policy.full:
        reference = copy.deepcopy(policy.model).eval().requires_grad_(False)
    lr = base_learning_rate(method="reinforcement", full=policy.full, n_params=policy.n_params)
    assert isinstance(hp.learning_rate_multiplier, float)
    engine = Engine(
        model=policy.model,
        tokenizer=policy.tokenizer,
        max_batch_size=max(8, hp.batch_size * hp.group_size),
    )
    grading = _grading(settings)
    method: ReinforcementMethod | None = None
    try:
        method = ReinforcementMethod(
            policy=policy,
            engine=engine,
            grading=grading,
            grader=grading.parse(body["grader"], param="method.reinforcement.grader"),
            train=train,
            valid=valid,
            hp=hp,
            seed=job.seed,
            learning_rate=lr * hp.learning_rate_multiplier,
            reference=reference,
            response_format=body.get("response_format"),
            workers=workers,
        )
        return run_loop(runtime, method, hp, workers)  # type: ignore[arg-type]
    except GraderFailure as exc:  # raised by a step's scoring, never while assembling
        runtime.fail("grader_error", str(exc))
        runtime.release()
        return "failed"
    finally:
        engine.close()
        if method is not None:
            method.close()  # the grading clients, on the event loop the method ran them in
        else:  # it failed to assemble: no loop of its own to close them on
            asyncio.run(grading.aclose())
