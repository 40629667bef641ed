"""`/v1/models`: registered base models, ids with `/`, errors."""

from __future__ import annotations

import openai
import pytest
from openai.types import Model

from support import run_cli


def test_models_list_and_retrieve(server, client) -> None:
    run_cli("models", "add", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B", data_dir=server.data_dir)
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert "Qwen/Qwen3-0.6B" in ids
    for m in listed.data:
        Model.model_validate(m.model_dump())
    # The SDK percent-encodes the `/`; the route must still find the model (Decision 10).
    got = client.models.retrieve("Qwen/Qwen3-0.6B")
    Model.model_validate(got.model_dump())
    assert got.id == "Qwen/Qwen3-0.6B" and got.owned_by == "openrft"
    # Every project sees base models.
    assert "Qwen/Qwen3-0.6B" in [m.id for m in server.client(server.new_key("p2")).models.list()]


def test_model_errors(server, client) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("ft:nothing:default::ftjob-x")
    assert err.value.code == "model_not_found" and err.value.param == "model"
    run_cli("models", "add", "base-x", "some/where", data_dir=server.data_dir)
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("base-x")
