"""Alembic migration environment of the clinical store (run programmatically by ``open_store``)."""
