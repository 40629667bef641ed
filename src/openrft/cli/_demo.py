"""`openrft demo`: the main job end to end on a tiny model, offline, in minutes.

It starts an embedded server in a temporary data folder (or uses `--base-url`), builds
a tiny base model, warms it up with a short supervised job on single-digit addition,
then runs a reinforcement job with a python grader through the official `openai`
package — the Bedrock GSM8K walkthrough in miniature. Every number it prints is
measured in this run.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["add_demo_command"]

GRADER_SOURCE = '''
def grade(sample, item):
    """1 when the answer, stripped, is the reference sum; else 0."""
    return 1.0 if sample["output_text"].strip() == str(item["reference_answer"]) else 0.0
'''


@dataclass
class Problems:
    train: list[tuple[int, int]]
    held_out: list[tuple[int, int]]


def _problems(seed: int) -> Problems:
    pairs = [(a, b) for a in range(10) for b in range(10)]
    random.Random(seed).shuffle(pairs)
    return Problems(train=pairs[20:], held_out=pairs[:20])


def _jsonl(pairs: list[tuple[int, int]], *, supervised: bool) -> bytes:
    lines = []
    for a, b in pairs:
        messages: list[dict[str, str]] = [{"role": "user", "content": f"{a}+{b}="}]
        if supervised:
            lines.append({"messages": [*messages, {"role": "assistant", "content": str(a + b)}]})
        else:
            lines.append({"messages": messages, "reference_answer": str(a + b)})
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def accuracy(
    client: Any, model: str, pairs: list[tuple[int, int]], *, samples: int, seed: int
) -> float:
    """Fraction of sampled answers (temperature 1) that are exactly right."""
    right = total = 0
    for i, (a, b) in enumerate(pairs):
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"{a}+{b}="}],
            n=samples,
            temperature=1.0,
            max_completion_tokens=4,
            seed=seed + i,
        )
        right += sum(c.message.content.strip() == str(a + b) for c in reply.choices)
        total += samples
    return right / total


def _run_job(
    client: Any,
    *,
    model: str,
    data: bytes,
    name: str,
    method: dict[str, Any],
    validation: bytes | None,
    seed: int,
) -> Any:
    import io

    from openrft.cli._watch import watch_job

    train = client.files.create(file=(f"{name}.jsonl", io.BytesIO(data)), purpose="fine-tune")
    valid = None
    if validation is not None:
        valid = client.files.create(
            file=(f"{name}-valid.jsonl", io.BytesIO(validation)), purpose="fine-tune"
        ).id
    job = client.fine_tuning.jobs.create(
        model=model,
        training_file=train.id,
        validation_file=valid,
        suffix=name,
        seed=seed,
        method=method,
    )
    job = watch_job(client, job.id, interval=0.5)
    if job.status != "succeeded":
        raise SystemExit(f"openrft demo: the {name} job ended {job.status}: {job.error}")
    return job


def _start_server(data_dir: Path, key: str) -> tuple[Any, str]:
    import os
    import socket
    import subprocess
    import sys

    import httpx

    from openrft.inference import build_tiny_model
    from openrft.store import Store

    build_tiny_model(data_dir / "models" / "tiny", seed=0)
    store = Store.open(
        database_url=f"sqlite:///{data_dir / 'openrft.db'}",
        blob_dir=data_dir / "blobs",
        # The server below inherits the environment, OPENRFT_BLOB_URL included.
        blob_url=os.environ.get("OPENRFT_BLOB_URL"),
    )
    store.models.register_base("tiny", str(data_dir / "models" / "tiny"), details={"tiny": True})
    store.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openrft.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "OPENRFT_API_KEY": key},
        stdout=log,
        stderr=log,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    raise SystemExit(f"openrft demo: the server did not start; see {data_dir / 'server.log'}")


def plot_rewards(client: Any, job_id: str, path: Path) -> list[dict[str, Any]]:
    """Write reward and validation reward per step to `path`; returns the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = client.fine_tuning.jobs.list_events(job_id, limit=1000).data
    metrics = sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [m["step"] for m in metrics],
        [m["critic_rewards_mean"] for m in metrics],
        label="train reward (mean of each step's samples)",
    )
    valid = [m for m in metrics if "valid_reward_mean" in m]
    if valid:
        ax.plot(
            [m["step"] for m in valid],
            [m["valid_reward_mean"] for m in valid],
            "o-",
            label="validation reward (held-out problems)",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_ylim(0, 1)
    ax.set_title("openrft demo: GRPO on single-digit addition")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return metrics


def _stream_answer(client: Any, model: str, question: str) -> str:
    print(f"\n{question}  →  ", end="", flush=True)
    text = ""
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        stream=True,
        temperature=0,
        max_completion_tokens=8,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return text


def run_demo(
    client: Any, *, steps: int, seed: int, warmup_epochs: int, output_dir: Path
) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    problems = _problems(seed)
    started = time.monotonic()
    measure = {"samples": 8, "seed": seed}
    console.rule("1. the base model (random weights)")
    base_acc = accuracy(client, "tiny", problems.held_out, **measure)
    console.print(f"held-out accuracy: {base_acc:.2f}")

    console.rule("2. warm-up: supervised fine-tuning on 80 addition problems")
    sft = _run_job(
        client,
        model="tiny",
        data=_jsonl(problems.train, supervised=True),
        name="warmup",
        validation=None,
        seed=seed,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": warmup_epochs, "batch_size": 32}},
        },
    )
    warm_acc = accuracy(client, sft.fine_tuned_model, problems.held_out, **measure)
    console.print(f"held-out accuracy: {warm_acc:.2f}")

    console.rule("3. reinforcement fine-tuning (GRPO) with a python grader")
    batch = 16
    epochs = max(1, -(-steps * batch // len(problems.train)))
    rl = _run_job(
        client,
        model=sft.fine_tuned_model,
        data=_jsonl(problems.train, supervised=False),
        validation=_jsonl(problems.held_out, supervised=False),
        name="grpo",
        seed=seed,
        method={
            "type": "reinforcement",
            "reinforcement": {
                "grader": {"type": "python", "name": "exact_sum", "source": GRADER_SOURCE},
                "hyperparameters": {
                    "n_epochs": epochs,
                    "max_steps": steps,
                    "batch_size": batch,
                    "group_size": 8,
                    "max_completion_tokens": 6,
                    "eval_interval": max(1, steps // 8),
                    "eval_samples": 4,
                    "early_stopping": False,
                },
            },
        },
    )
    rl_acc = accuracy(client, rl.fine_tuned_model, problems.held_out, **measure)
    metrics = plot_rewards(client, rl.id, output_dir / "reward_curve.png")

    table = Table(title="held-out accuracy (20 problems x 8 samples at temperature 1)")
    for column in ("model", "accuracy"):
        table.add_column(column)
    table.add_row("base (random)", f"{base_acc:.2f}")
    table.add_row("warmed up (SFT)", f"{warm_acc:.2f}")
    table.add_row("reinforced (GRPO)", f"{rl_acc:.2f}")
    console.print(table)
    first = [m["critic_rewards_mean"] for m in metrics[:10]]
    last = [m["critic_rewards_mean"] for m in metrics[-10:]]
    console.print(
        f"train reward, first 10 steps {sum(first) / len(first):.2f} → last 10 steps "
        f"{sum(last) / len(last):.2f}; curve written to {output_dir / 'reward_curve.png'}"
    )
    a, b = problems.held_out[0]
    _stream_answer(client, rl.fine_tuned_model, f"{a}+{b}=")
    console.print(f"fine-tuned model: {rl.fine_tuned_model}")
    console.print(f"total time: {time.monotonic() - started:.0f} s")
    return {
        "base": base_acc,
        "warm": warm_acc,
        "reinforced": rl_acc,
        "job": rl.id,
        "model": rl.fine_tuned_model,
    }


def cmd_demo(args: argparse.Namespace) -> int:
    import openai

    output_dir = Path(args.output_dir).expanduser()
    output_dir.mkdir(parents=True, exist_ok=True)
    proc, data_dir = None, None
    key = args.api_key or "sk-demo-" + secrets.token_urlsafe(16)
    base_url = args.base_url
    if base_url is None:
        data_dir = Path(tempfile.mkdtemp(prefix="openrft-demo-"))
        proc, base_url = _start_server(data_dir, key)
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=2)
    try:
        run_demo(
            client,
            steps=args.steps,
            seed=args.seed,
            warmup_epochs=args.warmup_epochs,
            output_dir=output_dir,
        )
        if args.keep and proc is not None:
            print(
                f"\nThe server keeps running: dashboard {base_url.removesuffix('/v1')}/ "
                f"(API key {key}), data in {data_dir}. Press Ctrl-C to stop."
            )
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        if data_dir is not None and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def add_demo_command(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the whole product on a tiny model, offline")
    demo.add_argument("--output-dir", default=".", help="where reward_curve.png goes")
    demo.add_argument("--steps", type=int, default=160, help="reinforcement steps")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--warmup-epochs", type=int, default=50, help="supervised warm-up epochs")
    demo.add_argument("--keep", action="store_true", help="keep the server and data folder")
    demo.add_argument("--base-url", help="use a running server instead of an embedded one")
    demo.add_argument("--api-key", help="key for --base-url")
    demo.set_defaults(func=cmd_demo)
