"""`openrft files | jobs | chat`: a running server through its HTTP API and the openai SDK.

`--base-url`, `OPENAI_BASE_URL` and `OPENAI_API_KEY` are honoured as the openai tools do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_client_commands", "openai_client"]


def openai_client(args: argparse.Namespace):  # noqa: ANN201 - an openai.OpenAI
    import openai

    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"
    key = args.api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENRFT_API_KEY")
    if not key:
        sys.exit("openrft: set OPENAI_API_KEY (or pass --api-key) to talk to the server")
    return openai.OpenAI(base_url=base_url, api_key=key)


def _json_arg(text: str | None) -> Any:
    """A JSON value given inline or as @path."""
    if text is None:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    return json.loads(text)


def _print(obj: Any) -> None:
    print(json.dumps(obj.model_dump() if hasattr(obj, "model_dump") else obj, indent=2))


def cmd_files_upload(args: argparse.Namespace) -> int:
    with open(args.path, "rb") as f:
        created = openai_client(args).files.create(file=f, purpose=args.purpose)
    print(created.id)
    return 0


def cmd_files_list(args: argparse.Namespace) -> int:
    for f in openai_client(args).files.list():
        print(f"{f.id}\t{f.purpose}\t{f.bytes}\t{f.filename}")
    return 0


def cmd_jobs_create(args: argparse.Namespace) -> int:
    hp = _json_arg(args.hyperparameters) or {}
    body: dict[str, Any] = {"hyperparameters": hp}
    if args.method == "reinforcement":
        grader = _json_arg(args.grader)
        if grader is None:
            sys.exit("openrft: a reinforcement job needs --grader JSON (or @file.json)")
        body["grader"] = grader
    job = openai_client(args).fine_tuning.jobs.create(
        model=args.model,
        training_file=args.training_file,
        validation_file=args.validation_file,
        suffix=args.suffix,
        seed=args.seed,
        method={"type": args.method, args.method: body},  # type: ignore[typeddict-item]
    )
    print(job.id)
    return 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    for job in openai_client(args).fine_tuning.jobs.list(limit=args.limit):
        print(f"{job.id}\t{job.status}\t{job.model}\t{job.fine_tuned_model or ''}")
    return 0


def cmd_jobs_control(args: argparse.Namespace) -> int:
    jobs = openai_client(args).fine_tuning.jobs
    job = getattr(jobs, args.action)(args.job_id)
    print(f"{job.id}\t{job.status}")
    return 0


def cmd_jobs_events(args: argparse.Namespace) -> int:
    events = list(openai_client(args).fine_tuning.jobs.list_events(args.job_id, limit=args.limit))
    for event in reversed(events):
        print(f"{event.created_at}\t{event.level}\t{event.message}")
    return 0


def cmd_jobs_watch(args: argparse.Namespace) -> int:
    from openrft.cli._watch import watch_job

    job = watch_job(openai_client(args), args.job_id, interval=args.interval)
    return 0 if job.status == "succeeded" else 1


def cmd_chat(args: argparse.Namespace) -> int:
    client = openai_client(args)
    history: list[dict[str, str]] = []
    prompts = [args.message] if args.message else None
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            text = prompts.pop(0)
        else:
            try:
                text = input("you> ")
            except EOFError:
                return 0
        history.append({"role": "user", "content": text})
        stream = client.chat.completions.create(
            model=args.model,
            messages=history,
            stream=True,  # type: ignore[arg-type]
            max_completion_tokens=args.max_tokens,
            temperature=args.temperature,
        )
        answer = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer += chunk.choices[0].delta.content
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": answer})


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", help="server URL ending in /v1 (default $OPENAI_BASE_URL)")
    common.add_argument("--api-key", help="API key (default $OPENAI_API_KEY)")
    return common


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    common = _client_options()
    files = sub.add_parser("files", help="upload and list files").add_subparsers(
        dest="action", required=True
    )
    upload = files.add_parser("upload", parents=[common], help="upload a file")
    upload.add_argument("path")
    upload.add_argument("--purpose", default="fine-tune")
    upload.set_defaults(func=cmd_files_upload)
    files.add_parser("list", parents=[common]).set_defaults(func=cmd_files_list)

    jobs = sub.add_parser("jobs", help="fine-tuning jobs").add_subparsers(
        dest="action", required=True
    )
    create = jobs.add_parser("create", parents=[common], help="create a job")
    create.add_argument("--model", required=True)
    create.add_argument("--training-file", required=True)
    create.add_argument("--validation-file")
    create.add_argument("--method", choices=["supervised", "reinforcement"], default="supervised")
    create.add_argument("--grader", help="grader JSON, or @file.json")
    create.add_argument("--hyperparameters", help="JSON, or @file.json")
    create.add_argument("--suffix")
    create.add_argument("--seed", type=int)
    create.set_defaults(func=cmd_jobs_create)
    lst = jobs.add_parser("list", parents=[common])
    lst.add_argument("--limit", type=int, default=20)
    lst.set_defaults(func=cmd_jobs_list)
    for action in ("cancel", "pause", "resume"):
        control = jobs.add_parser(action, parents=[common], help=f"{action} a job")
        control.add_argument("job_id")
        control.set_defaults(func=cmd_jobs_control)
    events = jobs.add_parser("events", parents=[common], help="print a job's events")
    events.add_argument("job_id")
    events.add_argument("--limit", type=int, default=100)
    events.set_defaults(func=cmd_jobs_events)
    watch = jobs.add_parser("watch", parents=[common], help="follow a job until it ends")
    watch.add_argument("job_id")
    watch.add_argument("--interval", type=float, default=1.0)
    watch.set_defaults(func=cmd_jobs_watch)

    chat = sub.add_parser("chat", parents=[common], help="chat with a model (streamed)")
    chat.add_argument("model")
    chat.add_argument("--message", "-m", help="send one message and exit")
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.set_defaults(func=cmd_chat)
