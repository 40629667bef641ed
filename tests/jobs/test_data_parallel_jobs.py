"""Data-parallel reinforcement jobs (issue 9): `num_workers: 2` runs two ranks that each
sample, grade and differentiate half of every step's prompts, and ends at the weights of the
same job on one worker (Decision 13: sampling is keyed by the prompt's index in the step)."""

from __future__ import annotations

import openai
import pytest
import torch
from safetensors.torch import load_file

from support.jobs import (
    ALL_PAIRS,
    addition_lines,
    final_weights,
    metrics_events,
    reinforcement_job,
    upload,
    wait_for,
)

SAME = ("critic_rewards_mean", "critic_rewards_std", "frac_reward_zero_std",
        "response_length_mean", "response_length_clip_ratio", "grader_errors",
        "valid_reward_mean")  # fmt: skip
CLOSE = ("actor_pg_loss", "actor_entropy", "actor_grad_norm", "critic_advantages_mean")


@pytest.mark.parametrize(
    "hp",
    [
        {},
        # groups replaced across ranks, advantages scaled by the whole batch's deviation
        {"dynamic_sampling": True, "scale_rewards": "batch", "loss_type": "grpo"},
    ],
    ids=["dapo", "dynamic-sampling"],
)
def test_two_workers_train_the_weights_of_one(job_server, hp: dict) -> None:
    client = job_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=False), "rl.jsonl")
    # 5 validation prompts: an uneven split between the ranks
    valid = upload(client, addition_lines(ALL_PAIRS[:5], answer=False), "valid.jsonl")
    one = reinforcement_job(client, train, 1, valid, **hp)
    two = reinforcement_job(client, train, 2, valid, **hp)
    done = {job_id: wait_for(client, job_id, timeout=240) for job_id in (one, two)}
    for job in done.values():
        assert job.status == "succeeded", job.error
    assert done[two].method.reinforcement.hyperparameters.num_workers == 2
    log = (job_server.data_dir / "logs" / f"{two}.log").read_text()
    assert f"job {two} rank 1: succeeded" in log  # a second rank really trained

    steps = {j: sorted(metrics_events(client, j), key=lambda e: e.data["step"]) for j in done}
    assert [e.data["step"] for e in steps[two]] == [1, 2, 3]
    assert "valid_reward_mean" in steps[one][-1].data
    assert all(e.data["actor_grad_norm"] > 0 for e in steps[one])
    for a, b in zip(steps[one], steps[two], strict=True):
        assert a.data.keys() == b.data.keys()
        for key in SAME:
            if key not in a.data:
                continue
            assert a.data[key] == pytest.approx(b.data[key], rel=1e-6), (a.data["step"], key)
        for key in CLOSE:
            assert a.data[key] == pytest.approx(b.data[key], rel=1e-3, abs=1e-5), key
    assert done[one].trained_tokens == done[two].trained_tokens

    w1, w2 = final_weights(job_server.data_dir, one), final_weights(job_server.data_dir, two)
    assert w1.keys() == w2.keys()
    base = load_file(str(job_server.data_dir / "models" / "tiny" / "model.safetensors"))
    assert max((w1[k] - base[k]).abs().max().item() for k in w1) > 1e-3  # it trained
    for name in w1:
        # float32 sums in another order, then Adam: a near-zero gradient's rounding moves
        # its weight by up to lr/100 (tests/training/test_data_parallel.py checks in float64).
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5)
    rollouts = client.get(f"/fine_tuning/jobs/{two}/rollouts", cast_to=object,
                          options={"params": {"limit": 100, "step": 3}})  # fmt: skip
    # rollouts_per_step (4) prompts of group 4, from both ranks' halves in step order
    assert sorted({r["prompt_index"] for r in rollouts["data"]}) == [0, 1, 2, 3]
    assert len(rollouts["data"]) == 16


def test_num_workers_must_divide_the_batch(job_server) -> None:
    client = job_server.client()
    train = upload(client, addition_lines(ALL_PAIRS, answer=False), "rl.jsonl")
    for workers, batch in ((3, 8), (0, 8), (65, 64)):
        with pytest.raises(openai.BadRequestError) as info:
            reinforcement_job(client, train, workers, batch_size=batch)
        assert info.value.body["param"] == "method.reinforcement.hyperparameters.num_workers"
