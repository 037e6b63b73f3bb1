"""Alembic environment: always online, on the connection ``runtime.clinic.store.upgrade`` passes in."""
from __future__ import annotations

from alembic import context

from runtime.clinic.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the clinic migrations through runtime.clinic.store.open_store/upgrade, "
                       "which passes a connection (config.attributes['connection'])")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
