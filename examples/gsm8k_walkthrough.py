"""The Amazon Bedrock RFT GSM8K walkthrough, run against an openrft server with the `openai` SDK.

1. convert GSM8K (examples/gsm8k_prepare.py) and upload train + test (validation) files;
2. create a reinforcement job, Bedrock's way (`extra_body`, a `lambda` reward function
   behind a URL, see examples/gsm8k_lambda_reward.py) or OpenAI's way (`--grader python`,
   openrft's ready-made GSM8K grader as python-grader source);
3. follow its events, printing the per-step metrics (critic_rewards_mean, actor_entropy, ...);
4. list its checkpoints; 5. chat with the fine-tuned model (streamed), and call the
   Responses API (streamed).

    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-my-key
    python examples/gsm8k_lambda_reward.py --port 9000 &
    python examples/gsm8k_walkthrough.py --model tiny --reward-url http://127.0.0.1:9000/grade

With a tiny random model the rewards stay near 0: the walkthrough runs, it does not shine.
Point `--model` at a real model (`openrft models add qwen Qwen/Qwen3-0.6B`) for that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gsm8k_prepare import DEFAULT_DATA, INSTRUCTION, SYSTEM_PROMPT, prepare  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}
SHOWN = ("critic_rewards_mean", "valid_reward_mean", "critic_advantages_mean", "actor_pg_loss",
         "actor_entropy", "actor_grad_norm", "actor_kl", "response_length_mean",
         "response_length_clip_ratio", "grader_errors")  # fmt: skip
QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?"
)


def printable(text: str) -> str:
    """Model text with control characters shown as "?" (a tiny random model emits any byte)."""
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)


def python_grader() -> dict[str, Any]:
    """openrft's GSM8K grader as OpenAI python-grader source. It reads `item.reference_answer`
    as a string or as an object with "text" (our data), "final_answer" or "answer"."""
    from openrft.graders import GSM8K_GRADER_SOURCE

    return {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}


def lambda_grader(url: str) -> dict[str, Any]:
    """Bedrock's reward-function grader: a Lambda ARN there, any URL speaking its contract here."""
    return {"type": "lambda", "lambda": {"function": url}}


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    hp: dict[str, Any] = {
        # Bedrock's three documented knobs, with its example values...
        "n_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate_multiplier": args.learning_rate_multiplier,
        # ... and openrft's GRPO knobs beside them.
        "group_size": args.group_size,
        "max_completion_tokens": args.max_completion_tokens,
    }
    if args.eval_interval:  # else "auto": min(10, steps), Bedrock's rule
        hp["eval_interval"] = args.eval_interval
    return hp


def new_events(client: OpenAI, job_id: str, seen: set[str]) -> list[Any]:
    """Events not printed yet, oldest first (the API lists the newest first)."""
    fresh = []
    for event in client.fine_tuning.jobs.list_events(job_id, limit=50):  # pages on by itself
        if event.id in seen:
            break
        fresh.append(event)
    seen.update(e.id for e in fresh)
    return fresh[::-1]


def print_event(event: Any) -> None:
    if event.type == "metrics" and event.data:
        data = event.data
        shown = " ".join(
            f"{k}={data[k]:.4g}" for k in SHOWN if isinstance(data.get(k), (int, float))
        )
        print(f"[metrics] step {data.get('step')}/{data.get('total_steps')} {shown}", flush=True)
    else:
        print(f"[{event.level}] {event.message}", flush=True)


def follow(client: OpenAI, job_id: str, *, interval: float, timeout: float) -> Any:
    """Print the job's events as they come until it ends; returns the finished job."""
    seen: set[str] = set()
    status = None
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for event in new_events(client, job_id, seen):  # all of them up to `job`'s status
            print_event(event)
        if job.status != status:
            print(f"job {job_id}: {job.status}", flush=True)
            status = job.status
        if job.status in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {job.status} after {timeout:.0f}s")
        time.sleep(interval)


def chat(client: OpenAI, model: str, max_tokens: int) -> None:
    """Chat Completions, streamed: the fine-tuned model answers at once, no deployment."""
    print(f"\nchat.completions ({model}):", flush=True)
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": QUESTION + INSTRUCTION},
        ],
        max_tokens=max_tokens,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(printable(chunk.choices[0].delta.content), end="", flush=True)
    print(flush=True)


def respond(client: OpenAI, model: str, max_tokens: int) -> None:
    """The Responses API, streamed, as B1 calls it."""
    print(f"\nresponses ({model}):", flush=True)
    stream = client.responses.create(
        model=model,
        input=[{"role": "user", "content": QUESTION + INSTRUCTION}],
        max_output_tokens=max_tokens,
        stream=True,
    )
    for event in stream:
        if event.type == "response.output_text.delta":
            print(printable(event.delta), end="", flush=True)
        elif event.type in ("response.completed", "response.incomplete"):
            print(f"\n[response {event.response.id}: {event.response.status}]", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="base model: registered name or HF id")
    parser.add_argument("--grader", choices=("lambda", "python"), default="lambda")
    parser.add_argument("--reward-url", default="http://127.0.0.1:9000/grade",
                        help="the lambda reward function's URL (--grader lambda)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the converted JSONL goes (default: a temp folder)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None,
                        help="training problems (default 300, or --steps x --batch-size)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps: converts steps x batch-size problems")  # fmt: skip
    parser.add_argument("--test-limit", type=int, default=None, help="validation problems")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate-multiplier", type=float, default=1.0)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-completion-tokens", type=int, default=512)
    parser.add_argument("--eval-interval", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait")
    args = parser.parse_args(argv)
    if args.limit is None:
        args.limit = args.steps * args.batch_size if args.steps else 300
    if args.test_limit is None:
        args.test_limit = max(1, min(50, args.limit // 4))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY, as with any OpenAI code

    # 1. Data: GSM8K in Bedrock's RFT format, uploaded with purpose "fine-tune".
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        paths = prepare(args.data, out, limit=args.limit, test_limit=args.test_limit)
        with paths["train"].open("rb") as f:
            train = client.files.create(file=f, purpose="fine-tune")
        with paths["test"].open("rb") as f:
            valid = client.files.create(file=f, purpose="fine-tune")
    print(f"uploaded {train.id} (train), {valid.id} (validation)", flush=True)

    # 2. The job. Bedrock passes the method through extra_body (the SDK's types know no
    #    lambda grader); the python grader is OpenAI's own form.
    grader = lambda_grader(args.reward_url) if args.grader == "lambda" else python_grader()
    method = {
        "type": "reinforcement",
        "reinforcement": {"grader": grader, "hyperparameters": hyperparameters(args)},
    }
    if args.grader == "lambda":
        job = client.fine_tuning.jobs.create(
            model=args.model,
            training_file=train.id,
            validation_file=valid.id,
            seed=args.seed,
            extra_body={"method": method},
        )
    else:
        job = client.fine_tuning.jobs.create(
            model=args.model,
            training_file=train.id,
            validation_file=valid.id,
            seed=args.seed,
            method=method,  # type: ignore[arg-type]
        )
    print(f"created {job.id} ({args.grader} grader) on {args.model}", flush=True)

    # 3. Events and metrics, as they come.
    job = follow(client, job.id, interval=args.poll_interval, timeout=args.timeout)
    if job.status != "succeeded":
        print(f"job {job.status}: {job.error.message if job.error else ''}", flush=True)
        return 1
    events = client.fine_tuning.jobs.list_events(job.id, limit=100)  # pages on by itself
    metrics = [e.data for e in events if e.type == "metrics"]
    rewards = [m["critic_rewards_mean"] for m in sorted(metrics, key=lambda m: m["step"])]
    print(f"critic_rewards_mean per step: {[round(r, 3) for r in rewards]}", flush=True)

    # 4. Checkpoints, each servable by its own model name.
    for ckpt in client.fine_tuning.jobs.checkpoints.list(job.id, limit=10):
        print(f"checkpoint {ckpt.id} step {ckpt.step_number}: "
              f"{ckpt.fine_tuned_model_checkpoint}", flush=True)  # fmt: skip

    # 5. The fine-tuned model, at once.
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    print(f"fine-tuned model: {model}", flush=True)
    chat(client, model, args.max_completion_tokens)
    respond(client, model, args.max_completion_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
