#!/usr/bin/env bash
# Decision 15: the one prepared script for a lent GPU machine. That machine has torch,
# transformers, peft and accelerate but no internet, so the rest travels as wheels in `.whl/`
# (ignored by git; fetch them here first, see below). It runs the GRPO and serving benchmarks
# on CUDA, then the CUDA tests and two GRPO jobs through the real service on the GPU, within
# ~6 minutes, and writes everything it prints to $OUT/gpu_check.txt (or ./gpu_check.txt) for
# benchmarks/README.md.
#
#   bash benchmarks/gpu_wheels.sh          # here: the wheels for the machine's Python 3.12
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_check.txt"
exec > >(tee "$out") 2>&1
export PYTHONUNBUFFERED=1

echo "== machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nproc

echo "== packages (no network: the machine's own, then the carried wheels)"
site="$PWD/src"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl 2>&1 | tail -3
    site="/tmp/site:$site"
fi
# Absolute paths: the server and its job workers are subprocesses with other working folders.
export PYTHONPATH="$site"
python3 - <<'PY'
import importlib.metadata as md

import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
for name in ["transformers", "peft", "accelerate", "trl", "datasets", "pyarrow", "xgrammar",
             "fastapi", "sqlalchemy", "openai", "huggingface_hub"]:
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name} MISSING")
import openrft.cli  # noqa: F401  the service imports here, or nothing below can run
PY

echo "== GRPO benchmark, compute scale (CUDA, fp32 both sides)"
timeout 170 python3 benchmarks/grpo_vs_trl.py --scale compute --steps 4 2>&1 | tail -32

# One request per stream: one-at-a-time `generate` runs at ~50 tok/s on a lent H200 (launch
# bound), so four requests at 32 streams outlast the section.
echo "== serving benchmark (CUDA, tiny model)"
timeout 120 python3 benchmarks/serve.py --streams 1,8,32 --requests-per-stream 1 2>&1 | tail -20

echo "== GRPO benchmark, demo scale (CUDA)"
timeout 90 python3 benchmarks/grpo_vs_trl.py --steps 20 2>&1 | tail -30

echo "== tests on CUDA: the engine, and GRPO jobs through the service with their workers there"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/inference/test_cuda.py \
    "tests/jobs/test_grpo_jobs.py::test_reinforcement_raises_the_reward" \
    "tests/jobs/test_grpo_jobs.py::test_bedrock_walkthrough_with_a_lambda_reward" 2>&1 | tail -25
echo "== done"
date -u
