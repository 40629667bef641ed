"""A training worker: `python -m openrft.training.worker --job-id ID --lease-token T`.

Started by the local executor, one process per job. It owns the job while its lease
lives; everything it does reaches the user through the store. A reinforcement job with
`num_workers` N > 1 runs N data-parallel ranks: this worker is rank 0 and starts the
others (`_launch.py`), or, given `--rank/--world-size/...`, is the rank they say.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from openrft.config import Settings
from openrft.datasets import iter_examples
from openrft.logs import configure_logging
from openrft.methods import (
    SupervisedHyperparameters,
    base_learning_rate,
    requested_workers,
    resolve_supervised,
)
from openrft.store import JobRow, ProjectLimits, Store
from openrft.training._chat_data import TokenizedExample, tokenize_conversation
from openrft.training._data_parallel import RankLost, Rendezvous, Workers
from openrft.training._launch import LocalRanks, RankLauncher, Ranks, local_rendezvous
from openrft.training._loop import run_loop
from openrft.training._model import load_policy
from openrft.training._runtime import FollowerRuntime, JobRuntime
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


def run_supervised(runtime: JobRuntime, store: Store, settings: Settings, workers: Workers) -> str:
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
    return run_loop(runtime, method, hp, workers)  # type: ignore[arg-type]


def _run_reinforcement(
    runtime: JobRuntime, store: Store, settings: Settings, workers: Workers
) -> str:
    # Imported here so a supervised job never loads the graders and the engine.
    from openrft.training._grpo_job import run_reinforcement

    return run_reinforcement(runtime, store, settings, workers)


RUNNERS = {"supervised": run_supervised, "reinforcement": _run_reinforcement}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrft-worker")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--lease-token", required=True)
    parser.add_argument("--data-dir")
    # A data-parallel rank (see _launch.py); without them, rank 0 starts the others.
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world-size", type=int)
    parser.add_argument("--master-addr", default="127.0.0.1")
    parser.add_argument("--master-port", type=int)
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    return parser


def _start_ranks(
    args: argparse.Namespace, job: JobRow, launch: RankLauncher
) -> tuple[Rendezvous | None, Ranks | None]:
    """This process's rendezvous (None: a job of one worker), and ranks 1..N-1 if this
    worker leads a group on this machine and has just started them."""
    if args.world_size is not None:  # started as one rank of a group
        return Rendezvous(
            args.rank, args.world_size, args.master_addr, args.master_port, args.backend
        ), None
    world = requested_workers(job.method)
    if world == 1:
        return None, None
    everyone = local_rendezvous(world)
    job_argv = ["--job-id", args.job_id, "--lease-token", args.lease_token]
    if args.data_dir:
        job_argv += ["--data-dir", args.data_dir]
    return everyone[0], launch(job_argv=job_argv, rendezvous=everyone[1:])


def _join(
    rendezvous: Rendezvous | None, ranks: Ranks | None, on_failure: Callable[[str], None]
) -> Workers:
    if rendezvous is None:
        return Workers()
    if ranks is None:
        return Workers.join(rendezvous)
    # A rank that dies before joining would leave this one waiting out the group's timeout;
    # once joined, a dead rank's closed connection fails the next collective at once.
    joined = threading.Event()

    def watch() -> None:
        while not joined.wait(1.0):
            if failure := ranks.failure():
                on_failure(failure)
                return

    threading.Thread(target=watch, name="ranks", daemon=True).start()
    try:
        return Workers.join(rendezvous)
    finally:
        joined.set()


def main(argv: list[str] | None = None, *, launch: RankLauncher = LocalRanks.start) -> int:
    args = _parser().parse_args(argv)
    settings = Settings(**({"data_dir": Path(args.data_dir)} if args.data_dir else {}))
    configure_logging("info", settings.log_format)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = Store(
        database_url=settings.resolved_database_url,
        blob_dir=settings.blob_dir,
        blob_url=settings.blob_url,
    )
    job = store.jobs.by_id(args.job_id)
    if job.lease_token != args.lease_token:
        log.warning("job %s is leased to someone else; exiting", job.id)
        return 0
    if args.rank > 0:
        if args.world_size is None or args.master_port is None:
            raise SystemExit("--rank needs --world-size and --master-port")
        return _follow(args, store, settings, job)
    runtime = JobRuntime(
        store=store,
        job=job,
        token=args.lease_token,
        lease_ttl=settings.lease_ttl_s,
        heartbeat_s=settings.heartbeat_s,
        keep_checkpoints=store.projects.limits(
            job.project, ProjectLimits.defaults(settings)
        ).keep_checkpoints,
        tensorboard=settings.tensorboard,
    )
    runtime.start()  # the heartbeat keeps the lease while the other ranks start

    def abandon(failure: str) -> None:
        log.error("job %s: %s before the ranks joined", job.id, failure)
        runtime.fail("training_error", f"Training failed: {failure} before the ranks joined")
        runtime.release()
        runtime.close()
        os._exit(1)  # the main thread is blocked in the rendezvous

    workers, ranks, lost = Workers(), None, False
    try:
        rendezvous, ranks = _start_ranks(args, job, launch)
        workers = _join(rendezvous, ranks, abandon)
        _share_cores(settings, workers)
        outcome = RUNNERS[job.method["type"]](runtime, store, settings, workers)
        log.info("job %s: %s", job.id, outcome)
    except RankLost as exc:
        if ranks is not None:  # local ranks: say which one failed, as for any error
            _fail(runtime, exc, ranks)
        else:
            # Ranks placed by a cluster executor, as a lost node takes them: exit holding
            # the lease, so the job is reaped and resumes from its last checkpoint.
            log.error("job %s: a data-parallel rank was lost (%s); exiting", job.id, exc)
            lost = True
    except Exception as exc:
        _fail(runtime, exc, ranks)
    finally:
        workers.close()
        if ranks is not None:
            ranks.stop(timeout=60)
        runtime.close()
    return 1 if lost else 0


def _fail(runtime: JobRuntime, exc: Exception, ranks: Ranks | None) -> None:
    """The job fails with a message; the worker exits cleanly."""
    log.error("job %s failed:\n%s", runtime.job.id, traceback.format_exc())
    failure = ranks.failure() if ranks is not None else None
    reason = f" ({failure})" if failure else ""
    runtime.fail("training_error", f"Training failed: {type(exc).__name__}: {exc}{reason}")
    runtime.release()


def _share_cores(settings: Settings, workers: Workers) -> None:
    """Ranks on one machine split its cores, rather than each using all of them."""
    if workers.size > 1 and not settings.torch_threads:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers.size))


def _follow(args: argparse.Namespace, store: Store, settings: Settings, job: JobRow) -> int:
    """Rank > 0: train in step with rank 0, which reports; exit 1 on an error, so rank 0's
    launcher can say which rank failed."""
    runtime = FollowerRuntime(store=store, job=job, token=args.lease_token)
    runtime.start()
    rendezvous, _ = _start_ranks(args, job, LocalRanks.start)
    workers = _join(rendezvous, None, lambda failure: None)
    try:
        _share_cores(settings, workers)
        outcome = RUNNERS[job.method["type"]](runtime, store, settings, workers)
        log.info("job %s rank %d: %s", job.id, workers.rank, outcome)
        return 0
    except Exception:
        log.error("job %s rank %d failed:\n%s", job.id, workers.rank, traceback.format_exc())
        return 1
    finally:
        workers.close()


if __name__ == "__main__":
    sys.exit(main())
