"""A training worker: `python -m openrft.training.worker --job-id ID --lease-token T`.

Started by the local executor, one process per job. It owns the job while its lease
lives; everything it does reaches the user through the store.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

import torch

from openrft.config import Settings
from openrft.datasets import iter_examples
from openrft.logs import configure_logging
from openrft.methods import (
    SupervisedHyperparameters,
    base_learning_rate,
    resolve_supervised,
)
from openrft.store import JobRow, Store
from openrft.training._chat_data import TokenizedExample, tokenize_conversation
from openrft.training._loop import run_loop
from openrft.training._model import load_policy
from openrft.training._runtime import JobRuntime
from openrft.training._sft import SupervisedMethod

__all__ = ["main"]

log = logging.getLogger("openrft.training")


def _examples(store: Store, job: JobRow, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    return list(iter_examples(store.files.path(store.files.get(job.project, file_id))))


def _tokenized(
    runtime: JobRuntime, tokenizer, examples: list[dict], limit: int, what: str
) -> list[TokenizedExample]:
    tokens = [tokenize_conversation(tokenizer, e["messages"]) for e in examples]
    return runtime.drop_too_long(tokens, length=lambda t: len(t.input_ids), limit=limit, what=what)


def run_supervised(runtime: JobRuntime, store: Store, settings: Settings) -> str:
    job = runtime.job
    raw = job.method["supervised"]["hyperparameters"]
    train_raw = _examples(store, job, job.training_file)
    # "auto" resolves from the examples that fit, so only once they are tokenized.
    hp = SupervisedHyperparameters.model_validate(raw)
    torch.manual_seed(job.seed)
    policy = load_policy(
        store,
        job.model,
        fine_tuning_type=hp.fine_tuning_type,
        lora_rank=hp.lora_rank,
        lora_alpha=hp.lora_alpha,
    )
    limit = min(hp.max_seq_length, getattr(policy.model.config, "max_position_embeddings", 10**9))
    train = _tokenized(runtime, policy.tokenizer, train_raw, limit, "training")
    valid = _tokenized(
        runtime, policy.tokenizer, _examples(store, job, job.validation_file), limit, "validation"
    )
    hp = resolve_supervised(hp, n_examples=len(train))
    resolved = {**job.method, "supervised": {"hyperparameters": hp.model_dump()}}
    runtime.update(method=resolved)
    assert isinstance(hp.learning_rate_multiplier, float)
    lr = base_learning_rate(method="supervised", full=policy.full, n_params=policy.n_params)
    method = SupervisedMethod(
        policy=policy,
        train=train,
        valid=valid,
        hp=hp,
        seed=job.seed,
        learning_rate=lr * hp.learning_rate_multiplier,
    )
    return run_loop(runtime, method, hp)  # type: ignore[arg-type]


def _run_reinforcement(runtime: JobRuntime, store: Store, settings: Settings) -> str:
    # Imported here so a supervised job never loads the graders and the engine.
    from openrft.training._grpo_job import run_reinforcement

    return run_reinforcement(runtime, store, settings)


RUNNERS = {"supervised": run_supervised, "reinforcement": _run_reinforcement}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openrft-worker")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--lease-token", required=True)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    settings = Settings(**({"data_dir": Path(args.data_dir)} if args.data_dir else {}))
    configure_logging("info", settings.log_format)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = Store(database_url=settings.resolved_database_url, blob_dir=settings.blob_dir)
    job = store.jobs.by_id(args.job_id)
    if job.lease_token != args.lease_token:
        log.warning("job %s is leased to someone else; exiting", job.id)
        return 0
    runtime = JobRuntime(
        store=store,
        job=job,
        token=args.lease_token,
        lease_ttl=settings.lease_ttl_s,
        heartbeat_s=settings.heartbeat_s,
    )
    runtime.start()
    try:
        outcome = RUNNERS[job.method["type"]](runtime, store, settings)
        log.info("job %s: %s", job.id, outcome)
    except Exception as exc:  # the job fails with a message; the worker exits cleanly
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        runtime.fail("training_error", f"Training failed: {type(exc).__name__}: {exc}")
        runtime.release()
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
