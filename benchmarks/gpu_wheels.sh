#!/usr/bin/env bash
# Fetch, here, the wheels that benchmarks/gpu_check.sh installs on a lent GPU machine: what the
# machine's image (Python 3.12, torch, accelerate, numpy, pandas, pyarrow, ...) lacks, at the
# versions this project is tested with. About 43 MiB, under the 64 MiB that travels with a call.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qs '^/.whl/$' .git/info/exclude || echo /.whl/ >>.git/info/exclude
wanted=(
    transformers==5.24.0 huggingface_hub==2.4.0 hf-xet==1.8.0 httpx2==2.16.2 httpcore2==2.16.2
    truststore==0.10.5 idna==3.20 typing-extensions==4.16.0 regex==2026.5.9 click==8.5.1
    typer==0.29.2 fsspec==2026.9.0 anyio==4.16.0 peft==0.21.2
    fastapi==0.165.0 starlette==1.10.0 opentelemetry-api==1.45.2 uvicorn==0.54.0
    python-multipart==0.0.34 pydantic==2.13.4 pydantic_core==2.46.4 pydantic-settings==2.14.1
    python-dotenv==1.2.2 annotated-types==0.7.0 typing-inspection==0.4.2
    SQLAlchemy==2.1.9 greenlet==3.5.6 alembic==1.20.1 Mako==1.4.3
    xgrammar==0.2.8 apache-tvm-ffi==0.1.15.post2 RapidFuzz==3.14.6 nltk==3.10.4 defusedxml==0.7.1
    openai==3.57.0 distro==1.9.0 jiter==0.19.0 sniffio==1.3.1 tensorboardX==2.6.5
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "${wanted[@]}"
du -sh .whl
