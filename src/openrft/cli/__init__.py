"""The `openrft` command.

openrft serve | keys | models      the local server and its data folder
openrft models export              a model as a Hugging Face folder, from a server
openrft files | jobs | chat        a running server, through its HTTP API
openrft demo                       the whole product on a tiny model, offline
"""

from __future__ import annotations

import argparse

from openrft.cli._admin import add_admin_commands
from openrft.cli._client import add_client_commands
from openrft.cli._demo import add_demo_command
from openrft.cli._export import add_export_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openrft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_command(add_admin_commands(sub))
    add_client_commands(sub)
    add_demo_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args) or 0)
