"""Alembic environment: migrations run on the connection openrft hands in."""

from alembic import context

from openrft.store._tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters tables by copy; batch mode makes the same migration work on both.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
