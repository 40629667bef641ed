"""GRPO: openrft's trainer against TRL's `GRPOTrainer`, same model, data and settings, one run.

Both systems start from the same weights (a tiny byte-level Llama, warmed up once
here by a short supervised phase and saved to a temp folder) and train with the
same group size, prompts per step, completion length, learning rate (constant),
number of steps, loss (`dapo`, beta 0, clip 0.2, grad clip 1.0), temperature 1,
fp32, and the same torch thread count. Each system runs in its own subprocess so
that its peak memory (VmHWM) is its own. The openrft side is the real trainer
(`openrft.training._grpo.ReinforcementMethod`, driven step by step); its grader
is `string_check` `eq` (graded in-process, like TRL's Python reward function,
which computes the very same exact match).

    PYTHONPATH=src python benchmarks/grpo_vs_trl.py [--scale demo|compute] [--steps 30]
        [--lr 1e-4] [--seed 0] [--threads N] [--warmup-steps 100] [--min-completion 0]
        [--profile]

`--scale demo` (default): ~0.9M parameters, single-digit addition, group 8,
8 prompts per step, at most 6 completion tokens. `--scale compute` (issue 8):
hidden 512, 8 layers (~27M parameters), 128-token completions, started cold
(no warm-up, so completions run long: the point is compute, not reward), rewarded by
`text_similarity` `fuzzy_match` (rapidfuzz's ratio on both sides), so rewards differ
within groups and every group is trained. `--min-completion N` holds back stop tokens
for N tokens on both sides (vLLM's `min_tokens`, transformers' `min_new_tokens`): with
N = 128 every completion is exactly 128 tokens, the same work on both sides, where
natural lengths favour the side that does not pad (openrft).

Not a test: it prints numbers and asserts nothing (DESIGN "Tests and benchmarks").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GROUP, PROMPTS_PER_STEP = 8, 8
SCALES: dict[str, dict[str, Any]] = {
    "demo": {
        "model": {},  # build_tiny_model's defaults: hidden 128, 4 layers, ~0.89M parameters
        "max_completion": 6,
        "warmup_steps": 100,
        "steps": 30,
        "reward": "exact",
    },
    "compute": {
        "model": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1536},
        "max_completion": 128,
        "warmup_steps": 0,
        "steps": 6,
        # A cold model never writes the sum, so exact match would give every group equal
        # rewards, and openrft skips such groups (they have no gradient): a graded reward
        # keeps every group in the training pass, which is the work this scale measures.
        "reward": "fuzzy",
    },
}
WARMUP_BATCH, WARMUP_LR = 32, 1e-3


# -- shared by both sides ---------------------------------------------------------------
def problems() -> list[tuple[int, int]]:
    return [(a, b) for a in range(10) for b in range(10)]


def rl_problems() -> list[tuple[int, int]]:
    """96 of the 100 sums, so every step has exactly 8 prompts on both sides (openrft keeps an
    epoch's short last batch, TRL's sampler drops it: with 96 neither happens)."""
    return problems()[:96]


def user(a: int, b: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{a}+{b}="}]


def peak_rss_mib() -> tuple[float, float]:
    """(VmHWM, VmRSS) of this process in MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def device_peak_mib() -> float | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


# -- the parent: model, warm-up, matmul peak, the two children, the table ------------------
def build_and_warm(folder: Path, scale: dict[str, Any], warmup_steps: int, seed: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openrft.inference import build_tiny_model
    from openrft.training._chat_data import tokenize_conversation
    from openrft.training._model import device
    from openrft.training._sft import _loss_and_accuracy

    built = build_tiny_model(folder / "built", seed=seed, **scale["model"])
    if warmup_steps == 0:
        return built
    tok = AutoTokenizer.from_pretrained(built)
    # on the device the supervised loss puts its batch on (the GPU where there is one)
    model = AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32).to(device())
    examples = [
        tokenize_conversation(tok, user(a, b) + [{"role": "assistant", "content": str(a + b)}])
        for a, b in problems()
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=WARMUP_LR, weight_decay=0.0)
    # Not measured: one thread, which is as fast here and far steadier when other processes
    # hold the cores (two OpenMP threads on two busy cores ran this 10-40x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(seed)
    model.train()
    started = time.perf_counter()
    for _ in range(warmup_steps):
        batch = rng.sample(examples, WARMUP_BATCH)
        loss, accuracy, _ = _loss_and_accuracy(model, batch, tok.pad_token_id)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    print(
        f"warm-up: {warmup_steps} supervised steps of {WARMUP_BATCH} at lr {WARMUP_LR:g} in "
        f"{time.perf_counter() - started:.1f} s (last loss {loss.item():.3f}, "
        f"teacher-forced answer accuracy {accuracy:.2f})",
        flush=True,
    )
    torch.set_num_threads(threads)
    warmed = folder / "warmed"
    model.save_pretrained(warmed)
    tok.save_pretrained(warmed)
    return warmed


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matmul rate (FLOP/s) with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = 0.0
    for i in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first one warms up
            best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


def run_child(system: str, args: argparse.Namespace, model: Path, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        system,
        "--model-path",
        str(model),
        "--out",
        str(out),
        "--scale",
        args.scale,
        "--steps",
        str(args.steps),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--min-completion",
        str(args.min_completion),
    ] + (["--profile"] if args.profile else [])
    started = time.perf_counter()
    subprocess.run(command, check=True)
    result = json.loads(out.read_text())
    result["process_s"] = time.perf_counter() - started
    return result


def summarize(result: dict[str, Any], n_params: int, skip: int) -> dict[str, float]:
    steps = result["steps"][skip:]
    step_s = [s["step_s"] for s in steps]
    train_s = sum(s["training_s"] for s in steps)
    generated = sum(s["completion_tokens"] for s in steps)
    trained = sum(s["trained_tokens"] for s in steps)
    executed = sum(s.get("executed_tokens", s["trained_tokens"]) for s in steps)
    rewards = [s["reward"] for s in result["steps"]]
    return {
        "s_per_step": statistics.median(step_s),
        "s_per_step_mean": statistics.fmean(step_s),
        "s_per_step_min": min(step_s),
        "completion_tok_s": generated / sum(step_s),
        "peak_rss_mib": result["peak_rss_mib"],
        "reward_last10": statistics.fmean(rewards[-10:]),
        "reward_first": rewards[0],
        "sampling_s": statistics.median(s["sampling_s"] for s in steps),
        "grading_s": statistics.median(s["grading_s"] for s in steps),
        "training_s": statistics.median(s["training_s"] for s in steps),
        "train_flops": 6 * n_params * trained / train_s,
        "train_flops_exec": 6 * n_params * executed / train_s,
        "mean_completion_len": generated / len(steps) / (GROUP * PROMPTS_PER_STEP),
        "s_per_ktok": 1000 * sum(step_s) / generated,
        "rss_loaded_mib": result["rss_loaded_mib"],
    }


def print_table(rows: dict[str, dict[str, float]], peak: float, threads: int) -> None:
    o, t = rows["openrft"], rows["trl"]

    def line(name: str, key: str, fmt: str) -> None:
        ratio = f"{o[key] / t[key]:.2f}" if t[key] else "n/a"
        print(f"| {name} | {o[key]:{fmt}} | {t[key]:{fmt}} | {ratio} |")

    print(f"\nfp32 matmul peak (2048², {threads} threads): {peak / 1e9:.1f} GFLOP/s\n")
    print("| metric | openrft | TRL | openrft/TRL |")
    print("|---|---|---|---|")
    line("seconds per step (median)", "s_per_step", ".3f")
    line("seconds per step (mean)", "s_per_step_mean", ".3f")
    line("seconds per step (fastest)", "s_per_step_min", ".3f")
    line("completion tokens per second", "completion_tok_s", ".0f")
    line("peak RSS, MiB (VmHWM)", "peak_rss_mib", ".0f")
    line("reward, mean of last 10 steps", "reward_last10", ".3f")
    line("reward at step 1", "reward_first", ".3f")
    line("  sampling s/step (median)", "sampling_s", ".3f")
    line("  grading s/step (median)", "grading_s", ".4f")
    line("  training s/step (median)", "training_s", ".3f")
    line("training GFLOP/s, per-sample equivalent (6·N·B·G·(P+C))", "train_flops_g", ".2f")
    line("  as % of the matmul peak", "train_peak_pct", ".1f")
    line("training GFLOP/s executed (6·N·tokens run)", "train_flops_exec_g", ".2f")
    line("  as % of the matmul peak", "train_exec_pct", ".1f")
    line("mean completion length, tokens", "mean_completion_len", ".2f")
    line("seconds per 1,000 completion tokens", "s_per_ktok", ".3f")
    line("RSS after imports + model load, MiB", "rss_loaded_mib", ".0f")


def parent(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    scale = SCALES[args.scale]
    print(
        f"scale {args.scale}: group {GROUP}, {PROMPTS_PER_STEP} prompts/step, max "
        f"{scale['max_completion']} completion tokens, lr {args.lr:g}, {args.steps} steps, "
        f"seed {args.seed}, torch threads {args.threads} (cores: {os.cpu_count()}), fp32, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        flush=True,
    )
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="grpo-vs-trl-") as tmp:
        folder = Path(tmp)
        model = build_and_warm(folder, scale, args.warmup_steps, args.seed)
        from transformers import AutoModelForCausalLM

        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
        print(f"model: {n_params / 1e6:.2f}M parameters, saved to {model}", flush=True)
        peak = matmul_peak(args.threads)
        print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
        results = {}
        for system in ("openrft", "trl"):
            print(f"running {system} ...", flush=True)
            results[system] = run_child(system, args, model, folder / f"{system}.json")
            print(
                f"  {system}: whole process {results[system]['process_s']:.1f} s, load average "
                f"(1 min) after: {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    skip = 1 if args.steps > 1 else 0
    rows = {k: summarize(v, n_params, skip) for k, v in results.items()}
    for row in rows.values():
        row["train_flops_g"] = row["train_flops"] / 1e9
        row["train_peak_pct"] = 100 * row["train_flops"] / peak
        row["train_flops_exec_g"] = row["train_flops_exec"] / 1e9
        row["train_exec_pct"] = 100 * row["train_flops_exec"] / peak
    print_table(rows, peak, args.threads)
    print(
        f"\nmedians over steps 2..{args.steps} (step 1 is the warm-up step); tokens/s = all "
        "completion tokens of those steps / their total time; training FLOP/s counts the "
        "non-pad prompt+completion tokens of the training forward/backward: per-sample "
        "equivalent = every completion with its prompt (TRL's work, the same useful "
        "result), executed = the tokens openrft's training passes run (each prompt once "
        "per group, no completion's last token, no group whose rewards are all equal)."
    )
    for system, result in results.items():
        print(
            f"{system} rewards by step: " + " ".join(f"{s['reward']:.2f}" for s in result["steps"])
        )
        print(
            f"{system} seconds by step: " + " ".join(f"{s['step_s']:.3f}" for s in result["steps"])
        )
        print(
            f"{system} mean completion length by step: "
            + " ".join(
                f"{s['completion_tokens'] / (GROUP * PROMPTS_PER_STEP):.1f}"
                for s in result["steps"]
            )
        )


# -- the children -------------------------------------------------------------------------
def child_openrft(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openrft.graders import GradingService
    from openrft.inference import Engine
    from openrft.methods import ReinforcementHyperparameters, resolve_reinforcement
    from openrft.training._chat_data import prompt_ids
    from openrft.training._grpo import Prompt, ReinforcementMethod
    from openrft.training._model import Policy, device

    scale = SCALES[args.scale]
    tok = AutoTokenizer.from_pretrained(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.float32)
    model = model.to(device())
    loaded = peak_rss_mib()[1]
    prompts = [
        Prompt(
            messages=user(a, b),
            item={"reference_answer": str(a + b)},
            ids=prompt_ids(tok, user(a, b)),
        )
        for a, b in rl_problems()
    ]
    steps_per_epoch = math.ceil(len(prompts) / PROMPTS_PER_STEP)
    hp = resolve_reinforcement(
        ReinforcementHyperparameters(
            n_epochs=min(50, math.ceil(args.steps / steps_per_epoch)),
            batch_size=PROMPTS_PER_STEP,
            group_size=GROUP,
            max_completion_tokens=scale["max_completion"],
            loss_type="dapo",
            temperature=1.0,
        ),
        n_examples=len(prompts),
    )
    n_params = sum(p.numel() for p in model.parameters())
    policy = Policy(model=model, tokenizer=tok, full=True, n_params=n_params)
    engine = Engine(model=model, tokenizer=tok, max_batch_size=GROUP * PROMPTS_PER_STEP)
    grading = GradingService()
    if scale["reward"] == "exact":
        grader = grading.parse(
            {
                "type": "string_check",
                "name": "sum",
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference_answer}}",
                "operation": "eq",
            }
        )
    else:
        grader = grading.parse(
            {
                "type": "text_similarity",
                "name": "sum",
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference_answer}}",
                "evaluation_metric": "fuzzy_match",
            }
        )
    method = ReinforcementMethod(
        policy=policy, engine=engine, grading=grading, grader=grader, train=prompts, valid=[],
        hp=hp, seed=args.seed, learning_rate=args.lr,
    )  # fmt: skip
    method.sampling = dataclasses.replace(method.sampling, min_tokens=args.min_completion)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    prompt_len = len(prompts[0].ids)
    # Tokens the training forward passes run (the engine's run under inference mode): each
    # prompt once per group, each completion but its last token, flat groups skipped.
    executed = [0]

    def count(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if torch.is_grad_enabled():
            executed[0] += kwargs["input_ids"].numel()

    model.register_forward_pre_hook(count, with_kwargs=True)
    steps = []
    for step in range(1, args.steps + 1):
        before = method.trained_tokens
        executed[0] = 0
        if profiler is not None and step > 1:
            profiler.enable()
        started = time.perf_counter()
        metrics = method.train_step(step)
        elapsed = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        timing = metrics["timing"]["step"]
        completion = round(metrics["response_length_mean"] * GROUP * PROMPTS_PER_STEP)
        assert method.trained_tokens - before == completion
        steps.append(
            {
                "step_s": elapsed,
                "reward": metrics["critic_rewards_mean"],
                "sampling_s": timing["sampling"],
                "grading_s": timing["grading"],
                "training_s": timing["training"],
                "completion_tokens": completion,
                "trained_tokens": completion + prompt_len * GROUP * PROMPTS_PER_STEP,
                "executed_tokens": executed[0],
            }
        )
    engine.close()
    method.close()
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    return {"steps": steps, "rss_loaded_mib": loaded, "prompt_len": prompt_len}


def child_trl(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from datasets import Dataset

    scale = SCALES[args.scale]
    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.float32)
    loaded = peak_rss_mib()[1]
    dataset = Dataset.from_list(
        [{"prompt": user(a, b), "answer": str(a + b)} for a, b in rl_problems()]
    )

    def exact_sum(
        completions: list[list[dict[str, str]]], answer: list[str], **_: Any
    ) -> list[float]:
        # the same test as openrft's string_check `eq`: the completion text equals the sum
        return [
            1.0 if c[0]["content"] == a else 0.0 for c, a in zip(completions, answer, strict=True)
        ]

    def fuzzy_sum(
        completions: list[list[dict[str, str]]], answer: list[str], **_: Any
    ) -> list[float]:
        # the same score as openrft's text_similarity `fuzzy_match`: rapidfuzz's ratio / 100
        from rapidfuzz import fuzz

        return [
            fuzz.ratio(c[0]["content"], a) / 100 for c, a in zip(completions, answer, strict=True)
        ]

    reward = exact_sum if scale["reward"] == "exact" else fuzzy_sum

    steps: list[dict[str, Any]] = []
    current: dict[str, Any] = {}

    class Timer(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            current.clear()
            current["started"] = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            current["step_s"] = time.perf_counter() - current["started"]

        def on_log(
            self, _args: Any, _state: Any, _control: Any, logs: Any = None, **__: Any
        ) -> None:
            if not logs or "reward" not in logs:
                return
            completion = round(logs["completions/mean_length"] * GROUP * PROMPTS_PER_STEP)
            generation = current["generation_s"]
            steps.append(
                {
                    "step_s": current["step_s"],
                    "reward": logs["reward"],
                    # TRL generates and scores in one call; the reward function's own time
                    # is measured inside it and moved to "grading"
                    "sampling_s": generation - current["grading_s"],
                    "grading_s": current["grading_s"],
                    "training_s": current["step_s"] - generation,
                    "completion_tokens": completion,
                    "trained_tokens": completion + current["prompt_tokens"],
                }
            )

    def timed_reward(*a: Any, **k: Any) -> list[float]:
        started = time.perf_counter()
        out = reward(*a, **k)
        current["grading_s"] = current.get("grading_s", 0.0) + time.perf_counter() - started
        return out

    timed_reward.__name__ = reward.__name__
    config = GRPOConfig(
        output_dir=str(Path(args.out).parent / "trl-out"),
        per_device_train_batch_size=GROUP * PROMPTS_PER_STEP,
        num_generations=GROUP,
        max_completion_length=scale["max_completion"],
        learning_rate=args.lr,
        beta=0.0,
        loss_type="dapo",
        temperature=1.0,
        use_cpu=not cuda,
        bf16=False,
        gradient_checkpointing=False,  # openrft does not checkpoint either: same compute
        report_to="none",
        logging_steps=1,
        max_steps=args.steps,
        save_strategy="no",
        gradient_accumulation_steps=1,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        seed=args.seed,
        disable_tqdm=True,
        generation_kwargs={"min_new_tokens": args.min_completion} if args.min_completion else None,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=timed_reward, args=config, train_dataset=dataset,
        processing_class=tok, callbacks=[Timer()],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # its per-step log dicts would flood the table
    generate = trainer._generate_and_score_completions

    def timed_generate(inputs: Any) -> Any:
        started = time.perf_counter()
        out = generate(inputs)
        current["generation_s"] = time.perf_counter() - started
        current["prompt_tokens"] = int(out["prompt_mask"].sum())
        return out

    trainer._generate_and_score_completions = timed_generate
    trainer.train()
    # the fairness check: TRL's prompt tokens are openrft's
    from openrft.training._chat_data import prompt_ids

    rendered = trainer.processing_class.apply_chat_template(
        user(3, 4), tokenize=True, add_generation_prompt=True, return_dict=False
    )
    ours = prompt_ids(tok, user(3, 4))
    if list(rendered) != ours:
        print(f"WARNING: prompt tokens differ: TRL {rendered} vs openrft {ours}", file=sys.stderr)
    return {"steps": steps, "rss_loaded_mib": loaded, "prompt_len": len(ours)}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    result = child_openrft(args) if args.child == "openrft" else child_trl(args)
    result["peak_rss_mib"] = peak_rss_mib()[0]
    result["device_peak_mib"] = device_peak_mib()
    result["threads"] = torch.get_num_threads()
    Path(args.out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo")
    parser.add_argument("--steps", type=int, help="default: 30 (demo), 6 (compute)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--warmup-steps", type=int, help="default: 100 (demo), 0 (compute)")
    parser.add_argument(
        "--min-completion", type=int, default=0, help="no stop token before this many tokens"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile openrft's steps")
    parser.add_argument("--child", choices=("openrft", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = SCALES[args.scale]
    args.steps = args.steps or scale["steps"]
    if args.warmup_steps is None:
        args.warmup_steps = scale["warmup_steps"]
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
