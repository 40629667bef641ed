"""The server's model cache (Decision 3): which engine serves which model row, and least
recently used eviction of engines and adapters, never of one a request still holds.

The engine is passed in (STYLE.md habit 6): a recording stand-in, so no weights load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from openrft.api.services.models import ModelServer, WeightsKey
from openrft.errors import NotFound, Unavailable
from openrft.store import ModelRow, Store


class FakeEngine:
    def __init__(self, key: WeightsKey) -> None:
        self.key = key
        self.adapters: dict[str, str] = {}
        self.closed = False

    def load_adapter(self, name: str, path: str) -> None:
        self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        del self.adapters[name]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", blob_dir=tmp_path / "b")
    for name in ("a", "b", "c"):
        store.models.register_base(name, f"hub/{name}")
    for i, (fmt, parent) in enumerate([("full", None), ("adapter", None), ("adapter", "ft-1")]):
        store.models.add(
            ModelRow(
                id=f"ft-{i}",
                project="p",
                kind="fine-tuned",
                created_at=0,
                owned_by="p",
                source=f"jobs/{i}",
                base_model="a",
                weights_format=fmt,
                details={"parent": parent},
            )
        )
    return store


def _server(store: Store, **kwargs: Any) -> tuple[ModelServer, list[FakeEngine]]:
    opened: list[FakeEngine] = []

    def open_engine(key: WeightsKey, _options: dict[str, Any]) -> FakeEngine:
        opened.append(FakeEngine(key))
        return opened[-1]

    return ModelServer(store=store, open_engine=open_engine, **kwargs), opened  # type: ignore[arg-type]


def test_rows_resolve_to_engines_and_adapters(store: Store) -> None:
    async def run() -> None:
        server, opened = _server(store)
        blobs = store.blobs.path
        full = await server.acquire(await server.find("p", "ft-0"))
        assert full.adapter is None and opened[-1].key == WeightsKey(str(blobs("jobs/0")))
        lora = await server.acquire(await server.find("p", "ft-1"))
        assert opened[-1].key == WeightsKey("hub/a") and lora.adapter in opened[-1].adapters
        base = await server.acquire(await server.find("p", "a"))
        assert base.engine is lora.engine and base.adapter is None  # one engine, two models
        child = await server.acquire(await server.find("p", "ft-2"))
        # An adapter on an adapter: served on the base with its parent merged in.
        assert opened[-1].key == WeightsKey("hub/a", (str(blobs("jobs/1")),))
        assert child.adapter in opened[-1].adapters and len(opened) == 3
        with pytest.raises(NotFound):
            await server.find("other-project", "ft-0")

    asyncio.run(run())


def test_least_recently_used_engines_are_evicted_unless_busy(store: Store) -> None:
    async def run() -> None:
        server, opened = _server(store, max_loaded_models=2)
        held = await server.acquire(await server.find("p", "a"))
        (await server.acquire(await server.find("p", "b"))).release()
        (await server.acquire(await server.find("p", "c"))).release()
        # `a` is the least recently used but busy: `b` went instead.
        assert [e.closed for e in opened] == [False, True, False]
        held.release()
        (await server.acquire(await server.find("p", "b"))).release()
        assert opened[0].closed and [k.root for k in server.loaded] == ["hub/c", "hub/b"]
        server.close()
        assert all(e.closed for e in opened)

    asyncio.run(run())


def test_adapters_are_evicted_past_their_budget(store: Store) -> None:
    async def run() -> None:
        server, opened = _server(store, max_loaded_adapters=1)
        first = await server.acquire(await server.find("p", "ft-1"))
        (await server.acquire(await server.find("p", "a"))).release()
        assert len(opened[0].adapters) == 1
        first.release()
        store.models.add(
            ModelRow(
                id="ft-3",
                project="p",
                kind="checkpoint",
                created_at=0,
                owned_by="p",
                source="jobs/3",
                base_model="a",
                weights_format="adapter",
                details={},
            )
        )
        last = await server.acquire(await server.find("p", "ft-3"))
        assert list(opened[0].adapters) == [last.adapter]

    asyncio.run(run())


def test_a_model_that_fails_to_load_is_a_503(store: Store) -> None:
    def broken(key: WeightsKey, _options: dict[str, Any]) -> FakeEngine:
        raise OSError(f"{key.root} is not reachable")

    async def run() -> None:
        server = ModelServer(store=store, open_engine=broken)  # type: ignore[arg-type]
        with pytest.raises(Unavailable) as err:
            await server.acquire(await server.find("p", "a"))
        assert err.value.param == "model" and "not reachable" in err.value.message

    asyncio.run(run())
