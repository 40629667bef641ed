"""examples/: the Bedrock GSM8K walkthrough scripts, run as a user runs them.

The walkthrough runs as a subprocess against a real `openrft serve` with the tiny
model, once with the Lambda reward function (itself a subprocess on a free port)
and once with the python grader, in a tiny setting (8 problems, batch 4, group 4,
2 steps, 48 completion tokens). The reward function and the prepare script are also
unit-tested on hand-written inputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from support import Server, free_port, tiny_model_server

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"
TINY = ["--steps", "2", "--batch-size", "4", "--group-size", "4", "--max-completion-tokens",
        "48", "--test-limit", "2", "--poll-interval", "0.2", "--timeout", "240"]  # fmt: skip


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reward = _load("gsm8k_lambda_reward")
prepare = _load("gsm8k_prepare")


# -- the Lambda handler, on hand-written trajectories ----------------------------------


def _trajectory(answer: str, reference=None, **extra) -> dict:
    reference = {"text": "#### 1000"} if reference is None else reference
    return {
        "id": extra.pop("id", "t-1"),
        "messages": [
            {"role": "system", "content": prepare.SYSTEM_PROMPT},
            {"role": "user", "content": "How many?" + prepare.INSTRUCTION},
            {"role": "assistant", "content": answer},
        ],
        "reference_answer": reference,
        **extra,
    }


def _score(trajectory: dict) -> float:
    (result,) = reward.lambda_handler([trajectory], None)
    return result["aggregate_reward_score"]


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("10 x 100 = 1000 slices.\n#### 1000", None, 1.0),  # correct
        ("10 x 100 = 900 slices.\n#### 900", None, 0.0),  # wrong
        ("So in all: #### 1,000", None, 1.0),  # thousands separator
        ("She earns $5.\n#### $5", {"text": "#### 5"}, 1.0),  # dollar sign
        ("#### 5.00", {"text": "#### 5"}, 1.0),  # same number
        ("The answer is 1000.", None, 0.0),  # no ####
        ("####1000", None, 0.0),  # the strict pattern needs the space
        ("#### 1000", "#### 1000", 1.0),  # a plain-string reference
        ("#### -3", {"text": "#### -3"}, 1.0),  # negative
        ("#### 1000" + " padding" * 60, None, 0.0),  # not within the last 300 chars
    ],
)
def test_lambda_handler_scores(answer: str, reference, expected: float) -> None:
    assert _score(_trajectory(answer, reference)) == expected


def test_lambda_handler_contract() -> None:
    batch = [
        _trajectory("#### 1000", id="a"),
        _trajectory("#### 7", id="b"),
        # Bedrock's documented shape: the reference only under metadata.
        {**_trajectory("#### 42", id="c", metadata={"reference_answer": {"text": "#### 42"}}),
         "reference_answer": None},  # fmt: skip
        # Content as a list of text parts; the last assistant message is the answer.
        {"id": "d", "reference_answer": {"text": "#### 3"},
         "messages": [{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "#### 9"},
                      {"role": "assistant", "content": [{"type": "text", "text": "#### 3"}]}]},
        {"id": "e", "messages": [{"role": "user", "content": "q"}], "reference_answer": "#### 1"},
    ]  # fmt: skip
    bare = reward.lambda_handler(batch, None)
    wrapped = reward.lambda_handler({"trajectories": batch}, None)
    assert bare == wrapped
    assert [r["id"] for r in bare] == ["a", "b", "c", "d", "e"]
    assert [r["aggregate_reward_score"] for r in bare] == [1.0, 0.0, 1.0, 1.0, 0.0]
    for result in bare:
        assert set(result) == {"id", "aggregate_reward_score", "metrics_list"}
        for metric in result["metrics_list"]:
            assert set(metric) == {"name", "value", "type"}
            assert metric["type"] in ("Reward", "Metric")
    assert json.loads(json.dumps(bare)) == bare  # what the HTTP server sends back
    assert reward.lambda_handler({}, None) == []


# -- the prepare script ----------------------------------------------------------------


def test_prepare_writes_bedrock_rft_lines(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "gsm8k_prepare.py"), "--limit", "5",
         "--test-limit", "3", "--data", str(GSM8K), "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "train: 5 problems" in out.stdout and "test: 3 problems" in out.stdout
    train = [json.loads(x) for x in (tmp_path / "gsm8k_train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (tmp_path / "gsm8k_test.jsonl").read_text().splitlines()]
    assert len(train) == 5 and len(test) == 3
    originals = [json.loads(x) for x in (GSM8K / "train.jsonl").open().readlines()[:5]]
    for index, (line, original) in enumerate(zip(train, originals, strict=True)):
        assert set(line) == {"messages", "reference_answer", "task_id", "data_source"}
        system, user = line["messages"]
        assert system == {"role": "system", "content": prepare.SYSTEM_PROMPT}
        assert user["role"] == "user"  # a reinforcement line ends with the user's turn
        assert user["content"] == original["question"].strip() + prepare.INSTRUCTION
        assert user["content"].endswith('output the final answer after "####".')
        number = original["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        assert line["reference_answer"] == {"text": f"#### {number}"}
        assert line["task_id"] == f"gsm8k-train-{index}" and line["data_source"] == "gsm8k"
    assert originals[0]["answer"].endswith("#### 72")
    assert train[0]["reference_answer"] == {"text": "#### 72"}
    # The AWS handler scores GSM8K's own worked solution 1.0 against the converted line.
    for line, original in zip(train, originals, strict=True):
        assert _score({"id": "x", "messages": [{"role": "assistant", "content": original["answer"]}],
                       "reference_answer": line["reference_answer"]}) == 1.0  # fmt: skip


# -- the walkthrough against a real server ----------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OPENRFT_SCHEDULER_INTERVAL_S": "0.2"}
    with tiny_model_server(tmp_path_factory.mktemp("examples"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def reward_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """examples/gsm8k_lambda_reward.py in its own process; yields its URL and its log."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("reward") / "reward.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "gsm8k_lambda_reward.py"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the reward server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/grade", log_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _walkthrough(server: Server, *args: str) -> str:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": server.api_key}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "gsm8k_walkthrough.py"), "--data", str(GSM8K), *TINY, *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    print(out.stdout[-4000:])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout


def _check_run(server: Server, stdout: str, grader_type: str) -> list[dict]:
    assert "train: 8 problems" in stdout and "test: 2 problems" in stdout
    job_id = stdout.split("created ", 1)[1].split()[0]
    for step in (1, 2):
        line = next(x for x in stdout.splitlines() if x.startswith(f"[metrics] step {step}/2 "))
        for name in ("critic_rewards_mean=", "actor_entropy=", "response_length_mean="):
            assert name in line, line
    assert "valid_reward_mean=" in stdout  # the test file as validation, evaluated at step 2
    assert f"job {job_id}: succeeded" in stdout
    assert "checkpoint ftckpt_" in stdout and ":ckpt-step-2" in stdout
    assert f"fine-tuned model: ft:tiny:default::{job_id}" in stdout
    assert "chat.completions (ft:tiny:" in stdout and "responses (ft:tiny:" in stdout
    assert "[response resp_" in stdout

    client = server.client()
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded" and job.validation_file
    hp = job.method.reinforcement.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (1, 4, 1.0)
    metrics = sorted(
        (e.data for e in client.fine_tuning.jobs.list_events(job_id, limit=100) if e.type == "metrics"),
        key=lambda d: d["step"],
    )  # fmt: skip
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["scores"]["graders"][0]["type"] == grader_type for m in metrics)
    # Some completions stopped before the token limit, so the grader really graded
    # (cut-off ones are not graded and count in grader_errors).
    assert any(m["response_length_clip_ratio"] < 1.0 for m in metrics), metrics
    return metrics


def test_walkthrough_with_the_lambda_reward_function(server, reward_server) -> None:
    url, log = reward_server
    stdout = _walkthrough(server, "--grader", "lambda", "--reward-url", url)
    assert "(lambda grader) on tiny" in stdout
    _check_run(server, stdout, "lambda")
    assert '"POST /grade HTTP/1.1" 200' in log.read_text()  # the reward function was called


def test_walkthrough_with_the_python_grader(server) -> None:
    stdout = _walkthrough(server, "--grader", "python")
    assert "(python grader) on tiny" in stdout
    _check_run(server, stdout, "python")


def test_python_grader_reads_the_prepared_reference(server) -> None:
    """openrft's GSM8K grader source, as the walkthrough sends it, on a prepared line's item."""
    from openrft.graders import GSM8K_GRADER_SOURCE

    client = server.client()
    grader = {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}
    item = {"reference_answer": {"text": "#### 1000"}, "task_id": "t", "data_source": "gsm8k"}
    right = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="#### 1,000", item=item
    )
    wrong = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="#### 999", item=item)
    assert (right.reward, wrong.reward) == (1.0, 0.0)
