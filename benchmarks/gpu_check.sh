#!/usr/bin/env bash
# Decision 15: the one prepared script for a lent GPU machine (torch, transformers, peft and
# accelerate present; no vLLM, no internet; at most 64 MiB travels with the call). Runs the
# tests marked `gpu`, then the GRPO and serving benchmarks on CUDA, within ~8 minutes, and
# writes everything it prints to $OUT/gpu_check.txt (or ./gpu_check.txt) for
# benchmarks/README.md.
#
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
#
# Not yet run on a GPU: no session so far was lent one. Record its first output, with the
# card's name, in benchmarks/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_check.txt"
exec > >(tee "$out") 2>&1

echo "== machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

echo "== install (no network: only what the machine has)"
python3 -m pip install -q --no-deps -e . 2>&1 | tail -1
# The lent machine promises torch/transformers/peft/accelerate only: say what else is missing
# (carry wheels of it, under 64 MiB, if so).
python3 - <<'PY'
import importlib.util
need = ["fastapi", "xgrammar", "sqlalchemy", "alembic", "pydantic_settings", "rapidfuzz", "trl"]
print("missing:", [m for m in need if importlib.util.find_spec(m) is None] or "none")
PY
export PYTHONPATH=src

echo "== tests marked gpu"
timeout 120 python3 -m pytest -q -m gpu tests 2>&1 | tail -15

echo "== serving benchmark (CUDA, tiny model)"
timeout 150 python3 benchmarks/serve.py --streams 1,8,32 --requests-per-stream 4 2>&1 | tail -20

echo "== GRPO benchmark, demo scale (CUDA; TRL only if installed)"
if python3 -c "import trl" 2>/dev/null; then
    timeout 150 python3 benchmarks/grpo_vs_trl.py --steps 20 2>&1 | tail -30
else
    echo "trl is not installed on this machine: skipped (the benchmark needs its peer)"
fi
echo "== done"
