"""The CLI as people use it: `jobs watch` in a terminal and in a pipe, `chat`, and the
demo end to end in reduced form."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from support import run_cli
from support.jobs import ALL_PAIRS, addition_lines, upload


def _env(server) -> dict[str, str]:
    return {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": server.api_key}


def _start_job(server) -> str:
    run_cli("models", "init", "tiny-cli", data_dir=server.data_dir)
    client = server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    job = client.fine_tuning.jobs.create(
        model="tiny-cli", training_file=train,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 20}}},
    )  # fmt: skip
    return job.id


def _read_pty(fd: int, proc: subprocess.Popen, timeout: float) -> str:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out.decode(errors="replace")


def test_jobs_watch_in_a_terminal_and_in_a_pipe(server) -> None:
    job_id = _start_job(server)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "openrft.cli", "jobs", "watch", job_id, "--interval", "0.2"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**_env(server), "COLUMNS": "120"},
    )
    os.close(follower)
    screen = _read_pty(leader, proc, timeout=180)
    assert proc.wait(timeout=30) == 0
    os.close(leader)
    assert "5/5" in screen and "loss=" in screen  # the rich progress bar, at its end
    assert "\x1b[" in screen  # drawn with terminal control codes
    assert "fine-tuned model: ft:tiny-cli:default::" in screen

    piped = subprocess.run(
        [sys.executable, "-m", "openrft.cli", "jobs", "watch", job_id],
        capture_output=True, text=True, env=_env(server), timeout=60,
    )  # fmt: skip
    assert piped.returncode == 0
    lines = piped.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == [
        f"{i}/5" for i in range(1, 6)
    ]
    assert "\x1b[" not in piped.stdout  # plain lines when not a terminal
    assert lines[-1].startswith("fine-tuned model: ")

    listed = subprocess.run([sys.executable, "-m", "openrft.cli", "jobs", "list"],
                            capture_output=True, text=True, env=_env(server), timeout=60)  # fmt: skip
    assert job_id in listed.stdout and "succeeded" in listed.stdout
    model = lines[-1].removeprefix("fine-tuned model: ")
    chat = subprocess.run(
        [sys.executable, "-m", "openrft.cli", "chat", model, "-m", "2+2=", "--max-tokens", "3"],
        capture_output=True, text=True, env=_env(server), timeout=60,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr


def test_demo_end_to_end_reduced(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "openrft.cli", "demo", "--steps", "4", "--warmup-epochs", "3",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for row in ("base (random)", "warmed up (SFT)", "reinforced (GRPO)"):
        assert row in out
    assert "step 4/4 reward=" in out  # the reinforcement job's progress, from its events
    assert "fine-tuned model: ft:tiny:default:grpo:" in out
    png = tmp_path / "reward_curve.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
