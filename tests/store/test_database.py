"""The store on each database backend, SQLite and a real PostgreSQL: every migration up and
down, the schema the migrations build equals the tables' declaration, leases and event
keys hold under concurrent writers, and queries mean the same on both."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.pool import NullPool

import openrft.store
from openrft.errors import InvalidRequest
from openrft.store import FileRow, JobRow, ModelRow, Store, new_id, now
from openrft.store._tables import Base
from support import run_cli
from support.postgres import BACKENDS, database_env

MIGRATIONS = Path(openrft.store.__file__).parent / "migrations"
TABLES = {"alembic_version", "api_keys", "files", "models", "jobs", "job_events",
          "job_checkpoints", "job_rollouts", "projects"}  # fmt: skip


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on each backend."""
    env = database_env(request, request.param)
    return env.get("OPENRFT_DATABASE_URL", f"sqlite:///{tmp_path / 'openrft.db'}")


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(database_url=database_url, blob_dir=tmp_path / "blobs")
    yield opened
    opened.close()


def _job(status: str = "queued", **fields) -> JobRow:
    return JobRow(
        id=new_id("ftjob-"),
        project=fields.pop("project", "p"),
        model="tiny",
        base_model="tiny",
        training_file="file-x",
        seed=1,
        method={"type": "supervised"},
        status=status,
        created_at=now(),
        result_files=[],
        attempts=0,
        **fields,
    )


def _unleased(store: Store) -> int:
    with store.db.session() as s:
        return s.scalar(select(func.count()).where(JobRow.lease_token.is_(None))) or 0


def _alembic(connection) -> Config:  # noqa: ANN001 - a SQLAlchemy connection
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def test_migrations_go_down_and_up_and_match_the_tables(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "head")
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as connection:
            # What the migrations built is what the code declares: columns, types,
            # nullability, indexes and unique constraints.
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        with engine.begin() as connection:
            command.downgrade(_alembic(connection), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "head")
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_once(database_url: str, tmp_path: Path) -> None:
    """Four processes migrating one new database at once (replicas starting together):
    one migrates, the others wait and find it current; none fails."""
    if database_url.startswith("sqlite"):
        pytest.skip("one SQLite file belongs to one server; replicas share PostgreSQL")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openrft.cli",
                "db",
                "upgrade",
                "--database-url",
                database_url,
                "--data-dir",
                str(tmp_path / f"d{i}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(4)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs


def test_each_job_is_leased_to_exactly_one_of_several_schedulers(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    jobs = [_job() for _ in range(24)]
    for job in jobs:
        store.jobs.create(job)
    # Four schedulers, each with its own engine and connections, lease at once.
    leased: list[tuple[str, str, str]] = []
    start = threading.Barrier(4)

    def scheduler(i: int) -> None:
        own = Store(database_url=database_url, blob_dir=tmp_path / "blobs")
        start.wait()
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                won = own.jobs.lease_runnable(owner=f"s{i}", ttl=60, limit=2)
                leased.extend((job.id, token, f"s{i}") for job, token in won)
                if not won and _unleased(own) == 0:
                    break
        finally:
            own.close()

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(job_id for job_id, _, _ in leased)
    assert sorted(counts) == sorted(j.id for j in jobs)
    assert set(counts.values()) == {1}
    for job_id, token, owner in leased:
        row = store.jobs.by_id(job_id)
        assert (row.lease_token, row.lease_owner, row.attempts) == (token, owner, 1)
    # Nothing is left to lease while the leases live.
    assert store.jobs.lease_runnable(owner="late", ttl=60, limit=30) == []


def test_an_expired_lease_passes_to_another_scheduler(store: Store) -> None:
    job = store.jobs.create(_job())
    ((_, first),) = store.jobs.lease_runnable(owner="a", ttl=0.3, limit=1)
    assert store.jobs.update(job.id, token=first, status="running")
    assert store.jobs.lease_runnable(owner="b", ttl=60, limit=1) == []
    time.sleep(0.5)  # the first scheduler stopped renewing
    ((taken, second),) = store.jobs.lease_runnable(owner="b", ttl=60, limit=1)
    assert taken.id == job.id and second != first and taken.attempts == 2
    # The old worker finds out at its next heartbeat, and can no longer write the job.
    assert not store.jobs.heartbeat(job.id, first, 60)
    assert not store.jobs.update(job.id, token=first, status="failed")
    assert store.jobs.heartbeat(job.id, second, 60)


def test_an_event_key_is_written_once_under_concurrent_writers(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    job = store.jobs.create(_job())
    results: list[bool] = []
    start = threading.Barrier(6)

    def writer() -> None:
        own = Store(database_url=database_url, blob_dir=tmp_path / "blobs")
        start.wait()
        try:
            results.append(own.jobs.add_event(job.id, "Step 3/40", step=3, dedupe_key="step-3"))
        finally:
            own.close()

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    events = store.jobs.events(job.id, limit=10, after=None).rows
    assert [e.message for e in events] == ["Step 3/40"]


def test_queries_mean_the_same_on_every_backend(store: Store) -> None:
    tagged = [store.jobs.create(_job(job_metadata={"team": "a", "n": str(i)})) for i in range(5)]
    store.jobs.create(_job(job_metadata={"team": "b"}))
    store.jobs.create(_job(job_metadata=None))
    # JSON metadata filters, newest first, and the cursor continues without gaps or repeats.
    first = store.jobs.list("p", limit=3, after=None, metadata={"team": "a"})
    rest = store.jobs.list("p", limit=3, after=first.rows[-1].id, metadata={"team": "a"})
    assert first.has_more and not rest.has_more
    assert [j.id for j in first.rows + rest.rows] == [j.id for j in reversed(tagged)]
    # Booleans: a deleted model is invisible, a base model (project NULL) visible to all.
    store.models.register_base("base-a", "/nowhere")
    store.models.add(ModelRow(id="ft:x", project="p", kind="fine-tuned", created_at=now(),
                              owned_by="p", source="jobs/x/final", deleted=True))  # fmt: skip
    assert [m.id for m in store.models.list("p")] == ["base-a"]
    # Many events created in one second keep their order (by `seq`, never by time).
    job = tagged[0]
    for i in range(12):
        store.jobs.add_event(job.id, f"e{i}")
    pages, after = [], None
    while True:
        page = store.jobs.events(job.id, limit=5, after=after)
        pages += [e.message for e in page.rows]
        if not page.has_more:
            break
        after = page.rows[-1].id
    assert pages == [f"e{i}" for i in reversed(range(12))]
    # A concurrent re-registration of the same key is a no-op, not an error.
    store.keys.register("p", "sk-same")
    store.keys.register("p", "sk-same")
    assert store.keys.project_for("sk-same") == "p"
    # Sums over BIGINT come back as integers.
    with store.db.session() as s:
        s.add(FileRow(id="file-a", project="p", filename="a.jsonl", purpose="fine-tune",
                      bytes=3_000_000_000, created_at=now(), blob_key="files/file-a"))  # fmt: skip
    assert store.projects.storage_used("p") == 3_000_000_000


def test_values_the_database_cannot_hold_are_a_400(store: Store, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite stores any length; the API checks lengths before the store")
    with pytest.raises(InvalidRequest, match="too long"), store.db.session() as s:
        s.add(FileRow(id="file-b", project="p", filename="x" * 2000, purpose="fine-tune",
                      bytes=1, created_at=now(), blob_key="files/file-b"))  # fmt: skip


def test_admin_commands_take_the_database_url(database_url: str, tmp_path: Path) -> None:
    """`--database-url` and `OPENRFT_DATABASE_URL` reach `db upgrade`, `keys` and `models`."""
    data_dir = tmp_path / "data"
    flag = ("--database-url", database_url)
    assert "newest migration" in run_cli("db", "upgrade", *flag, data_dir=data_dir)
    key = run_cli("keys", "create", "--project", "ops", *flag, data_dir=data_dir)
    run_cli("models", "add", "org/m", "org/m", data_dir=data_dir,
            env={"OPENRFT_DATABASE_URL": database_url})  # fmt: skip
    assert "org/m" in run_cli("models", "list", *flag, data_dir=data_dir)
    listed = run_cli("keys", "list", "--project", "ops", *flag, data_dir=data_dir)
    assert len(listed.splitlines()) == 2
    store = Store(database_url=database_url, blob_dir=tmp_path / "blobs")
    try:
        assert store.keys.project_for(key) == "ops"
        assert store.models.get_base("org/m") is not None
    finally:
        store.close()
    # The URL, not the data folder's default SQLite file, held all of it.
    assert not (data_dir / "openrft.db").exists()
