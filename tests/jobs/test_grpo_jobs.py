"""Reinforcement (GRPO) jobs: learning for real, the Bedrock walkthrough with a Lambda
reward function, rollouts, grader failures, pause/resume and crash recovery."""

from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import torch
from openai.types.fine_tuning import FineTuningJob

from support.jobs import (
    ALL_PAIRS,
    addition_lines,
    final_weights,
    metrics_events,
    upload,
    wait_for,
    wait_for_pause_event,
    wait_for_step,
    worker_pid,
)

GRADER = {
    "type": "python",
    "name": "exact_sum",
    "source": "def grade(sample, item):\n"
    "    return 1.0 if sample['output_text'].strip() == item['reference_answer'] else 0.0\n",
}
BEDROCK_METRICS = {"step", "total_steps", "critic_rewards_mean", "critic_advantages_mean",
                   "actor_pg_loss", "actor_entropy", "actor_grad_norm", "response_length_mean"}  # fmt: skip
OUR_METRICS = {"critic_rewards_std", "actor_kl", "actor_pg_clipfrac", "actor_lr",
               "frac_reward_zero_std", "response_length_clip_ratio", "grader_errors",
               "step_time_s", "tokens_per_s", "train_reward_mean", "scores"}  # fmt: skip


def rl_method(grader=GRADER, **hp) -> dict:
    base = {"batch_size": 16, "group_size": 8, "max_completion_tokens": 6, "early_stopping": False}
    return {"type": "reinforcement",
            "reinforcement": {"grader": grader, "hyperparameters": {**base, **hp}}}  # fmt: skip


@pytest.fixture(scope="module")
def warm_model(job_server) -> str:
    """The tiny model after a supervised warm-up: it solves some problems, as the
    Bedrock walkthrough's starting model does (Decision 4: RL continues from it)."""
    client = job_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=True))
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=train, seed=0,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 32, "batch_size": 32, "checkpoint_interval": 100}}},
    )  # fmt: skip
    done = wait_for(client, job.id, timeout=300)
    assert done.status == "succeeded", done.error
    return done.fine_tuned_model


def rl_file(client: openai.OpenAI) -> str:
    return upload(client, addition_lines(ALL_PAIRS, answer=False), "rl.jsonl")


def test_reinforcement_raises_the_reward(job_server, warm_model) -> None:
    client = job_server.client()
    job = client.fine_tuning.jobs.create(
        model=warm_model,
        training_file=rl_file(client),
        seed=5,
        method=rl_method(n_epochs=13, learning_rate_multiplier=2.0),
    )
    done = wait_for(client, job.id, timeout=400)
    assert done.status == "succeeded", done.error
    FineTuningJob.model_validate(done.model_dump())
    # The job's model keeps the original base's name (Decision 4).
    assert done.fine_tuned_model.startswith("ft:tiny:default::")
    hp = done.method.reinforcement.hyperparameters
    assert hp.batch_size == 16 and hp.n_epochs == 13  # "auto" values resolved once it ran
    events = sorted(metrics_events(client, job.id), key=lambda e: e.data["step"])
    assert [e.data["step"] for e in events] == list(range(1, 92))
    assert events[0].message == "Step 1/91: training metrics"
    assert set(events[-1].data) >= BEDROCK_METRICS | OUR_METRICS
    rewards = [e.data["critic_rewards_mean"] for e in events]
    start, end = sum(rewards[:15]) / 15, sum(rewards[-15:]) / 15
    print(f"mean reward: first 15 steps {start:.3f}, last 15 steps {end:.3f}")
    assert end > start + 0.05, (start, end)

    rollouts = client.get(f"/fine_tuning/jobs/{job.id}/rollouts", cast_to=object,
                          options={"params": {"limit": 8, "step": 91}})  # fmt: skip
    assert rollouts["object"] == "list" and len(rollouts["data"]) == 8
    first = rollouts["data"][0]
    assert first["step"] == 91 and first["messages"][0]["content"].endswith("=")
    assert first["reward"] in (0.0, 1.0) and first["grader"]["name"] == "exact_sum"


class _LambdaHandler(BaseHTTPRequestHandler):
    """A Lambda reward function, as AWS's GSM8K sample writes it, behind plain HTTP."""

    calls: list[int] = []

    @staticmethod
    def lambda_handler(event, context):
        trajectories = event if isinstance(event, list) else event.get("trajectories", [])
        out = []
        for t in trajectories:
            answer = [m for m in t["messages"] if m["role"] == "assistant"][-1]["content"]
            reference = t.get("reference_answer") or t["metadata"]["reference_answer"]
            score = 1.0 if answer.strip() == reference else 0.0
            out.append(
                {
                    "id": t["id"],
                    "aggregate_reward_score": score,
                    "metrics_list": [{"name": "exact", "value": score, "type": "Metric"}],
                }
            )
        return out

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(len(body))
        data = json.dumps(self.lambda_handler(body, None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_bedrock_walkthrough_with_a_lambda_reward(job_server, warm_model) -> None:
    reward_server = ThreadingHTTPServer(("127.0.0.1", 0), _LambdaHandler)
    threading.Thread(target=reward_server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{reward_server.server_address[1]}/grade"
    client = job_server.client()
    try:
        valid = upload(client, addition_lines(ALL_PAIRS[::10], answer=False), "valid.jsonl")
        # Bedrock's form: the method passed through extra_body, a lambda grader.
        job = client.fine_tuning.jobs.create(
            model=warm_model, training_file=rl_file(client), validation_file=valid, seed=1,
            extra_body={"method": {"type": "reinforcement", "reinforcement": {
                "grader": {"type": "lambda", "lambda": {"function": url}},
                "hyperparameters": {"n_epochs": 1, "batch_size": 25, "learning_rate_multiplier": 1.0,
                                    "group_size": 4, "max_completion_tokens": 6,
                                    "eval_interval": 2}}}},
        )  # fmt: skip
        done = wait_for(client, job.id, timeout=300)
    finally:
        reward_server.shutdown()
    assert done.status == "succeeded", done.error
    assert _LambdaHandler.calls and max(_LambdaHandler.calls) > 1  # called in batches
    data = [e.data for e in metrics_events(client, job.id)]
    assert len(data) == 4 and all(set(d) >= BEDROCK_METRICS for d in data)
    assert {d["step"] for d in data if "valid_reward_mean" in d} == {2, 4}
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints and checkpoints[0].step_number == 4
    assert "valid_reward_mean" in checkpoints[0].metrics.model_dump()
    for model in (done.fine_tuned_model, checkpoints[-1].fine_tuned_model_checkpoint):
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "2+2="}], stream=True,
            max_completion_tokens=4, seed=0))  # fmt: skip
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        events = list(client.responses.create(model=model, input="3+3=", stream=True,
                                              max_output_tokens=4))  # fmt: skip
        assert events[0].type == "response.created" and events[-1].type == "response.completed"


def test_failing_grader_fails_the_job(job_server, warm_model) -> None:
    client = job_server.client()
    broken = {
        "type": "python",
        "name": "broken",
        "source": "def grade(sample, item):\n    return 1 / 0\n",
    }
    job = client.fine_tuning.jobs.create(model=warm_model, training_file=rl_file(client),
                                         method=rl_method(broken, n_epochs=1))  # fmt: skip
    done = wait_for(client, job.id, timeout=200)
    assert done.status == "failed"
    assert done.error.code == "grader_error"
    assert "The grader failed for 128 of 128 samples" in done.error.message
    assert "ZeroDivisionError" in done.error.message


def test_reinforcement_rejections(job_server, warm_model) -> None:
    client = job_server.client()
    data = rl_file(client)
    cases = [
        (rl_method(group_size=1), "method.reinforcement.hyperparameters.group_size"),
        (rl_method(batch_size=101), "method.reinforcement.hyperparameters.batch_size"),
        (rl_method(loss_type="ppo"), "method.reinforcement.hyperparameters.loss_type"),
        (
            rl_method(
                {
                    "type": "string_check",
                    "name": "s",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.reference_answer}}",
                    "operation": "is",
                }
            ),
            "method.reinforcement.grader.operation",
        ),
        (
            rl_method({"type": "lambda", "lambda": {"function": "http://169.254.169.254/x"}}),
            "method.reinforcement.grader.lambda.function",
        ),
    ]
    for method, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model=warm_model, training_file=data, method=method)
        assert err.value.param == param, err.value.message


def test_grpo_pause_resume_equals_uninterrupted_and_survives_a_kill(job_server, warm_model):
    client = job_server.client()
    method = rl_method(n_epochs=2, checkpoint_interval=3)
    straight = client.fine_tuning.jobs.create(model=warm_model, training_file=rl_file(client),
                                              seed=9, method=method).id  # fmt: skip
    assert wait_for(client, straight).status == "succeeded"
    paused = client.fine_tuning.jobs.create(model=warm_model, training_file=rl_file(client),
                                            seed=9, method=method).id  # fmt: skip
    wait_for_step(client, paused, 2)
    client.fine_tuning.jobs.pause(paused)
    wait_for_pause_event(client, paused)
    client.fine_tuning.jobs.resume(paused)
    wait_for_step(client, paused, 9)
    os.kill(worker_pid(paused), signal.SIGKILL)  # and a crash on top of the pause
    assert wait_for(client, paused).status == "succeeded"
    steps = sorted(e.data["step"] for e in metrics_events(client, paused))
    assert steps == list(range(1, 15))
    a = final_weights(job_server.data_dir, straight)
    b = final_weights(job_server.data_dir, paused)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-5)


def _greedy_accuracy(client: openai.OpenAI, model: str) -> float:
    right = 0
    for a, b in ALL_PAIRS:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"{a}+{b}="}], temperature=0,
            max_completion_tokens=3,
        )  # fmt: skip
        right += reply.choices[0].message.content.strip() == str(a + b)
    return right / len(ALL_PAIRS)


def test_supervised_warm_up_answers_better_than_the_base(job_server, warm_model) -> None:
    client = job_server.client()
    base, warm = _greedy_accuracy(client, "tiny"), _greedy_accuracy(client, warm_model)
    print(f"greedy accuracy on the 100 training problems: base {base:.2f}, warmed up {warm:.2f}")
    assert warm >= base + 0.2


def test_response_format_reaches_rollouts_and_graders(job_server, warm_model) -> None:
    """OpenAI's RFT accepts `response_format`: rollouts are constrained to the schema and
    graders read `sample.output_json`."""
    client = job_server.client()
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 2}},
              "required": ["answer"], "additionalProperties": False}  # fmt: skip
    grader = {"type": "string_check", "name": "json_answer", "operation": "eq",
              "input": "{{sample.output_json.answer}}", "reference": "{{item.reference_answer}}"}  # fmt: skip
    method = rl_method(grader, n_epochs=1, max_steps=2, batch_size=8, group_size=4,
                       max_completion_tokens=24)  # fmt: skip
    method["reinforcement"]["response_format"] = {
        "type": "json_schema", "json_schema": {"name": "sum", "schema": schema, "strict": True}}  # fmt: skip
    job = client.fine_tuning.jobs.create(model=warm_model, training_file=rl_file(client),
                                         method=method)  # fmt: skip
    done = wait_for(client, job.id, timeout=200)
    assert done.status == "succeeded", done.error
    rollouts = client.get(f"/fine_tuning/jobs/{job.id}/rollouts", cast_to=object,
                          options={"params": {"limit": 100}})["data"]  # fmt: skip
    assert rollouts
    for r in rollouts:
        if r["finish_reason"] == "stop":
            assert set(json.loads(r["completion"])) == {"answer"}
        assert not r["grader"]["errors"].get("invalid_variable_error")

    # A fine-tuned model can be deleted; it is gone for chat and retrieval at once.
    deleted = client.models.delete(done.fine_tuned_model)
    assert deleted.deleted and deleted.id == done.fine_tuned_model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(done.fine_tuned_model)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=done.fine_tuned_model,
                                       messages=[{"role": "user", "content": "1+1="}])  # fmt: skip
