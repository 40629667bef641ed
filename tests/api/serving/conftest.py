"""The serving tests: chat, completions and responses on `serving_server`
(tests/api/conftest.py), and the models it serves. `client` here talks to that server."""

from __future__ import annotations

import openai
import pytest

from support import Server


@pytest.fixture
def client(serving_server: Server) -> openai.OpenAI:
    return serving_server.client()
