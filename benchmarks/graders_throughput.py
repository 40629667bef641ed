"""Grader throughput in samples per second: the sandboxed python grader
(GSM8K-style, `GSM8K_GRADER_SOURCE`) and string_check.

    PYTHONPATH=src python benchmarks/graders_throughput.py [--samples N] [--workers W]

Not a test: it prints numbers and asserts nothing (DESIGN "Tests and benchmarks").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from openrft.graders import GSM8K_GRADER_SOURCE, GraderSettings, GradingService, Sample


def _data(n: int) -> tuple[list[Sample], list[dict[str, str]]]:
    samples = [
        Sample(output_text=f"Step by step... so the total is {i}.\n#### {i:,}") for i in range(n)
    ]
    items = [{"reference_answer": f"#### {i if i % 3 else i + 1}"} for i in range(n)]
    return samples, items


async def _rate(
    service: GradingService, config: dict[str, object], n: int, repeats: int
) -> tuple[float, float]:
    grader = await service.validate(config)
    samples, items = _data(n)
    await service.grade_batch(grader, samples[:64], items[:64])  # warm the workers up
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        results = await service.grade_batch(grader, samples, items)
        best = max(best, n / (time.perf_counter() - started))
    return best, sum(r.score for r in results) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = GraderSettings(python_workers=args.workers, allow_unsandboxed_python=False)
    python = {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}
    check = {"type": "string_check", "name": "final", "input": "{{ sample.output_text }}",
             "reference": "{{ item.reference_answer }}", "operation": "like"}  # fmt: skip
    async with GradingService(settings=settings) as service:
        python_rate, python_mean = await _rate(service, python, args.samples, args.repeats)
        check_rate, check_mean = await _rate(service, check, args.samples, args.repeats)
        sandboxed = service._pool.sandboxed  # noqa: SLF001 - reported, not relied on
    print(
        f"cores={os.cpu_count()} workers={args.workers} samples={args.samples} sandboxed={sandboxed}"
    )
    print(
        f"python grader (GSM8K source): {python_rate:,.0f} samples/s  (mean reward {python_mean:.3f})"
    )
    print(
        f"string_check:                 {check_rate:,.0f} samples/s  (mean reward {check_mean:.3f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
