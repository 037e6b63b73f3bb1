"""Initial clinical schema: subjects, sessions, metrics, raw_files.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

METRIC_COLUMNS = ("peak_kam_pct_bw_ht", "impulse_kam_pct_bw_ht_s", "peak_kem_pct_bw_ht", "impulse_kem_pct_bw_ht_s",
                  "peak_kcf_medial_bw", "peak_kcf_lateral_bw", "peak_kcf_total_bw", "medial_load_share",
                  "cocontraction_index", "limb_symmetry_pct", "assistance_impulse_nm_s", "assistance_peak_nm")


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("mass_kg", sa.Float, nullable=False),
        sa.Column("height_m", sa.Float, nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("affected_side", sa.String(5), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("session_date", sa.Date, nullable=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("trial_name", sa.String(128), nullable=False),
        sa.Column("side", sa.String(5), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("body_mass_kg", sa.Float, nullable=False),
        sa.Column("height_m", sa.Float, nullable=False),
        sa.Column("analysis", sa.JSON, nullable=True),
        sa.Column("device_settings", sa.JSON, nullable=True),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("model_hashes", sa.JSON, nullable=True),
        sa.Column("notes", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("subject_id", "session_date", "task", "source_sha256", name="uq_sessions_identity"),
    )
    op.create_index("ix_sessions_subject_id", "sessions", ["subject_id"])
    op.create_table(
        "metrics",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stances", sa.Integer, nullable=True),
        *[sa.Column(c, sa.Float, nullable=True) for c in METRIC_COLUMNS],
    )
    op.create_table(
        "raw_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("encrypted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_raw_files_session_id", "raw_files", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_raw_files_session_id", table_name="raw_files")
    op.drop_table("raw_files")
    op.drop_table("metrics")
    op.drop_index("ix_sessions_subject_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("subjects")
