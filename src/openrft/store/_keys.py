"""API keys: stored as sha256 hashes, never in clear; each belongs to one project."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openrft.errors import NotFound
from openrft.store._db import Database
from openrft.store._ids import new_id, now
from openrft.store._tables import ApiKeyRow

__all__ = ["KeyRepository", "hash_key"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, project: str, *, name: str | None = None, expires_at: int | None = None
    ) -> str:
        """Create a key and return it in clear: the only time it is ever shown."""
        key = "sk-openrft-" + secrets.token_urlsafe(32)
        self.register(project, key, name=name, expires_at=expires_at)
        return key

    def register(
        self, project: str, key: str, *, name: str | None = None, expires_at: int | None = None
    ) -> None:
        """Register a given key (`OPENRFT_API_KEY`); registering it again is a no-op."""
        digest = hash_key(key)
        try:
            with self._db.session() as s:
                existing = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
                if existing is not None:
                    return
                s.add(
                    ApiKeyRow(
                        id=new_id("key_"),
                        project=project,
                        key_hash=digest,
                        name=name,
                        created_at=now(),
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            # Replicas sharing a database start with the same key: one inserts it, the
            # others find it taken by the unique hash, which is the no-op asked for.
            return

    def project_for(self, key: str) -> str | None:
        """The project a live key belongs to, or None for an unknown, revoked or expired key.

        Read on every request, so a revoked key is refused at once; `last_used_at` is
        written at most once a minute, so authentication stays a read."""
        with self._db.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
            if row is None or row.revoked_at is not None:
                return None
            t = now()
            if row.expires_at is not None and row.expires_at <= t:
                return None
            if row.last_used_at is None or t - row.last_used_at >= 60:
                row.last_used_at = t
            return row.project

    def list(self, project: str) -> list[ApiKeyRow]:
        with self._db.session() as s:
            query = select(ApiKeyRow).where(ApiKeyRow.project == project)
            return list(s.scalars(query.order_by(ApiKeyRow.created_at, ApiKeyRow.id)))

    def revoke(self, key_id: str) -> ApiKeyRow:
        with self._db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"No such API key: {key_id}", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = now()
            return row

    def rotate(self, key_id: str) -> str:
        """A new key with the old one's project, name and expiry; the old one is revoked."""
        old = self.revoke(key_id)
        return self.create(old.project, name=old.name, expires_at=old.expires_at)
