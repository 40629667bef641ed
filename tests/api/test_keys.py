"""Key administration: expiry, revocation and rotation take effect on the next request."""

from __future__ import annotations

import time

import openai
import pytest

from support import run_cli


def _keys(server, project: str) -> list[list[str]]:
    """`openrft keys list` rows: id, name, created, expires, revoked, last_used."""
    out = run_cli("keys", "list", "--project", project, data_dir=server.data_dir)
    return [line.split("\t") for line in out.splitlines()[1:]]


def test_revoke_rotate_and_expire(server) -> None:
    key = run_cli("keys", "create", "--project", "ops", "--name", "ci", data_dir=server.data_dir)
    server.client(key).files.list()
    [(key_id, name, _, expires, revoked, last_used)] = _keys(server, "ops")
    assert (name, expires, revoked) == ("ci", "-", "-") and last_used != "-"

    new_key = run_cli("keys", "rotate", key_id, data_dir=server.data_dir)
    with pytest.raises(openai.AuthenticationError):
        server.client(key).files.list()  # refused at once, no restart
    server.client(new_key).files.list()

    # The successor keeps the name; revoking it refuses it on the next request too.
    [successor] = [row for row in _keys(server, "ops") if row[4] == "-"]
    assert successor[1] == "ci"
    run_cli("keys", "revoke", successor[0], data_dir=server.data_dir)
    with pytest.raises(openai.AuthenticationError):
        server.client(new_key).files.list()

    short = run_cli("keys", "create", "--project", "ops", "--expires-in", "2",
                    data_dir=server.data_dir)  # fmt: skip
    server.client(short).files.list()
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError):
        server.client(short).files.list()
