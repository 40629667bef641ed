"""`openrft serve`, `keys ...`, `projects ...`, `models ...`, `gc`: commands on the local data folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from openrft.config import SETTABLE, ProjectLimits, Settings

__all__ = ["add_admin_commands"]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir).expanduser()
    if getattr(args, "blob_url", None):
        overrides["blob_url"] = args.blob_url
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)


def _open_store(args: argparse.Namespace):  # noqa: ANN202 - openrft.store.Store
    from openrft.store import Store

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings, Store.open(
        database_url=settings.resolved_database_url,
        blob_dir=settings.blob_dir,
        blob_url=settings.blob_url,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from openrft.api import create_app
    from openrft.logs import configure_logging

    if args.role == "worker":
        print(
            "openrft serve: --role worker is not a server process: with the Ray executor, "
            "workers are Ray actors on the cluster's nodes (`ray start`), placed by a "
            "scheduler started with --executor ray --ray-address HOST:PORT; without Ray, "
            "--role scheduler (or all) runs jobs in local worker processes.",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    # A flag given wins over its OPENRFT_* variable.
    for name in ("role", "host", "port", "log_format", "executor", "ray_address"):
        if value := getattr(args, name):
            setattr(settings, name, value)
    configure_logging(args.log_level, settings.log_format)
    app = create_app(settings)
    # log_config=None: uvicorn keeps the logging configured above instead of its own.
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=args.log_level, log_config=None
    )
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    expires_at = int(time.time()) + args.expires_in if args.expires_in else None
    print(store.keys.create(args.project, name=args.name, expires_at=expires_at))
    return 0


def _when(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)) if timestamp else "-"


def cmd_keys_list(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    print("id\tname\tcreated\texpires\trevoked\tlast_used")
    for row in store.keys.list(args.project):
        print("\t".join([row.id, row.name or "-", _when(row.created_at), _when(row.expires_at),
                         _when(row.revoked_at), _when(row.last_used_at)]))  # fmt: skip
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    store.keys.revoke(args.key_id)
    print(f"{args.key_id}: revoked")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    print(store.keys.rotate(args.key_id))
    return 0


def _limit(value: str) -> int | str:
    """A non-negative integer, or `none` to clear the setting back to the server default."""
    if value.lower() == "none":
        return "none"
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or 'none', got {value}")
    return number


def cmd_projects_set(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    values = {k: getattr(args, k) for k in SETTABLE if getattr(args, k) is not None}
    row = store.projects.set(
        args.project, **{k: None if v == "none" else v for k, v in values.items()}
    )
    print(args.project + ": " + ", ".join(f"{k}={getattr(row, k)}" for k in SETTABLE))
    return 0


def cmd_projects_list(args: argparse.Namespace) -> int:
    settings, store = _open_store(args)
    defaults = ProjectLimits.defaults(settings)
    print("project\t" + "\t".join(SETTABLE) + "\tstorage_used\tactive_jobs")
    for name in store.projects.names():
        row = store.projects.get(name)  # only to mark which values are the server's defaults
        limits = store.projects.limits(name, defaults)
        cells = []
        for key in SETTABLE:
            value = getattr(limits, key)
            shown = "-" if value is None else str(value)
            own = row is not None and getattr(row, key) is not None
            cells.append(shown if own or value is None else f"{shown} (default)")
        used, active = store.projects.storage_used(name), store.projects.active_jobs(name)
        print("\t".join([name, *cells, str(used), str(active)]))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from openrft.store import collect_garbage

    _, store = _open_store(args)
    report = collect_garbage(store, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for key, size in report.removed:
        print(f"{verb} {key} ({size} bytes)")
    print(f"{verb} {len(report.removed)} unreferenced blobs, {report.freed} bytes")
    return 0


def cmd_models_init(args: argparse.Namespace) -> int:
    from openrft.inference import build_tiny_model

    settings, store = _open_store(args)
    target = settings.models_dir / args.name
    build_tiny_model(target, arch=args.arch, seed=args.seed)
    store.models.register_base(args.name, str(target), details={"tiny": True, "arch": args.arch})
    print(f"{args.name}: tiny {args.arch} model written to {target}")
    return 0


def cmd_models_add(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    source = args.source
    if Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())
    store.models.register_base(args.name, source)
    print(f"{args.name}: registered {source}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    _, store = _open_store(args)
    for row in store.models.list(args.project):
        print(f"{row.id}\t{row.kind}\t{row.source}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the schema migrations (the server also applies them at start)."""
    _open_store(args)
    print("database is at the newest migration")
    return 0


def add_admin_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add the data-folder commands; return the `models` subcommands for others to join."""
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", default=os.environ.get("OPENRFT_DATA_DIR"))
    data_dir.add_argument(
        "--database-url",
        help="the store's database, e.g. postgresql+psycopg://user@host/db "
        "(default: OPENRFT_DATABASE_URL, else SQLite in the data folder)",
    )

    serve = sub.add_parser("serve", parents=[data_dir], help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--blob-url", help="keep blobs in S3-compatible storage: s3://bucket/prefix (AWS_* env)"
    )
    serve.add_argument(
        "--role",
        choices=["all", "api", "scheduler", "worker"],
        help="all (default): API, scheduler and local workers in one process; api: HTTP only; "
        "scheduler: runs jobs, HTTP only for /healthz and /readyz (several of each may share "
        "one PostgreSQL)",
    )
    serve.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="where jobs run: local worker processes (default) or Ray actors (pip install "
        "'openrft[ray]'), each reserving OPENRFT_RAY_NUM_CPUS/_NUM_GPUS/_MEMORY_BYTES",
    )
    serve.add_argument(
        "--ray-address", help="the Ray cluster for --executor ray: HOST:PORT or auto"
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="json: one object per line with request ids"
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", parents=[data_dir], help="print a new API key")
    create.add_argument("--project", required=True)
    create.add_argument("--name")
    create.add_argument("--expires-in", type=int, help="seconds until the key expires")
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", parents=[data_dir], help="list a project's keys")
    listing.add_argument("--project", required=True)
    listing.set_defaults(func=cmd_keys_list)
    for action, func, text in (
        ("revoke", cmd_keys_revoke, "refuse a key from now on"),
        ("rotate", cmd_keys_rotate, "revoke a key, print its successor"),
    ):
        command = keys.add_parser(action, parents=[data_dir], help=text)
        command.add_argument("key_id")
        command.set_defaults(func=func)

    projects = sub.add_parser("projects", help="per-project quotas and retention")
    projects_sub = projects.add_subparsers(dest="action", required=True)
    pset = projects_sub.add_parser(
        "set", parents=[data_dir], help="set a project's quotas and retention ('none' clears)"
    )
    pset.add_argument("project")
    for key in SETTABLE:
        pset.add_argument("--" + key.replace("_", "-"), dest=key, type=_limit)
    pset.set_defaults(func=cmd_projects_set)
    projects_sub.add_parser(
        "list", parents=[data_dir], help="every project, its limits and storage used"
    ).set_defaults(func=cmd_projects_list)

    gc = sub.add_parser("gc", parents=[data_dir], help="remove blobs no row refers to")
    gc.add_argument("--dry-run", action="store_true", help="only print what would go")
    gc.set_defaults(func=cmd_gc)

    db = sub.add_parser("db", help="the database").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", parents=[data_dir], help="apply migrations").set_defaults(
        func=cmd_db_upgrade
    )

    models = sub.add_parser("models", help="register, list and export models").add_subparsers(
        dest="action", required=True
    )
    init = models.add_parser("init", parents=[data_dir], help="build and register a tiny model")
    init.add_argument("name")
    init.add_argument("--arch", choices=["llama", "qwen"], default="llama")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=cmd_models_init)
    add = models.add_parser("add", parents=[data_dir], help="register a HF id or local folder")
    add.add_argument("name")
    add.add_argument("source")
    add.set_defaults(func=cmd_models_add)
    lst = models.add_parser("list", parents=[data_dir], help="list models")
    lst.add_argument("--project", default="default")
    lst.set_defaults(func=cmd_models_list)
    return models  # `openrft models export` (a client command) joins these
