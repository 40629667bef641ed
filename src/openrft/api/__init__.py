"""The OpenAI-compatible HTTP surface."""

from openrft.api.app import create_app

__all__ = ["create_app"]
