"""GraderSettings from the server's Settings, the same in the server and in workers."""

from __future__ import annotations

from openrft.config import Settings

from ._config import GraderSettings

__all__ = ["grader_settings"]


def grader_settings(settings: Settings, *, judge_api_key: str | None = None) -> GraderSettings:
    return GraderSettings(
        judge_base_url=settings.resolved_judge_base_url,
        judge_api_key=judge_api_key or settings.judge_api_key,
        url_allowlist=tuple(settings.grader_url_allowlist),
        url_denylist=tuple(settings.grader_url_denylist),
        allow_unsandboxed_python=settings.allow_unsandboxed_python,
        # The sandbox masks the data folder: graders never see keys, files or weights.
        hidden_paths=(str(settings.data_dir),),
        embedding_model=settings.resolved_embedding_model,
    )
