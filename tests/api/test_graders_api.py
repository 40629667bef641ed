"""`/v1/fine_tuning/alpha/graders/run` and `/validate` on the real server, through the SDK."""

from __future__ import annotations

import openai
import pytest
from openai.types.fine_tuning.alpha import GraderRunResponse, GraderValidateResponse

from openrft.graders import GSM8K_GRADER_SOURCE

CHECK = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "operation": "eq"}  # fmt: skip
PYTHON = {"type": "python", "name": "gsm8k", "source": GSM8K_GRADER_SOURCE}
MULTI = {"type": "multi", "name": "both", "graders": {"exact": CHECK, "math": PYTHON},
         "calculate_output": "0.25 * exact + 0.75 * math"}  # fmt: skip


def test_run_each_kind(client: openai.OpenAI) -> None:
    result = client.fine_tuning.alpha.graders.run(
        grader=CHECK, model_sample="yes", item={"answer": "yes"}
    )
    GraderRunResponse.model_validate(result.model_dump())
    assert result.reward == 1.0 and result.metadata.type == "string_check"

    result = client.fine_tuning.alpha.graders.run(
        grader=PYTHON, model_sample="so 3 + 4 = 7\n#### 7", item={"reference_answer": "#### 7"}
    )
    GraderRunResponse.model_validate(result.model_dump())
    assert result.reward == 1.0 and not result.metadata.errors.python_grader_runtime_error

    broken = {"type": "python", "name": "broken", "source": "def grade(sample, item):\n    1/0\n"}
    result = client.fine_tuning.alpha.graders.run(grader=broken, model_sample="x")
    assert result.reward == 0.0 and result.metadata.errors.python_grader_runtime_error
    assert "ZeroDivisionError" in (result.metadata.errors.python_grader_runtime_error_details or "")

    # multi: the SDK types `graders` as one grader (reference §8); the reply still validates.
    result = client.fine_tuning.alpha.graders.run(
        grader=MULTI,  # type: ignore[arg-type]
        model_sample="#### 7",
        item={"answer": "no", "reference_answer": "7"},
    )
    GraderRunResponse.model_validate(result.model_dump())
    assert result.reward == 0.75 and result.sub_rewards == {"exact": 0.0, "math": 1.0}


def test_validate_and_errors(server, client: openai.OpenAI) -> None:
    valid = client.fine_tuning.alpha.graders.validate(grader=CHECK)
    GraderValidateResponse.model_validate(valid.model_dump())
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.alpha.graders.validate(grader={**CHECK, "operation": "is"})
    assert err.value.param == "grader.operation"
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.alpha.graders.run(
            grader={**MULTI, "calculate_output": "exact + __import__('os')"},  # type: ignore[arg-type]
            model_sample="x",
        )
    assert err.value.param == "grader.calculate_output"
    with pytest.raises(openai.AuthenticationError):
        server.client("sk-nope-0000000000").fine_tuning.alpha.graders.validate(grader=CHECK)


def test_cosine_uses_the_local_sentence_encoder(client: openai.OpenAI) -> None:
    """Decision 9: cosine through the locally installed all-MiniLM-L6-v2, nothing downloaded."""
    grader = {"type": "text_similarity", "name": "cos", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "evaluation_metric": "cosine"}  # fmt: skip
    item = {"answer": "A cat was sitting on the mat."}
    close = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="The cat sat on the mat.", item=item
    )
    far = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="Quarterly revenue rose by four percent.", item=item
    )
    assert not close.metadata.errors.other_error, close.metadata.errors
    assert close.reward > 0.6 > 0.3 > far.reward, (close.reward, far.reward)
