"""ORM tables of the clinical session store (SQLAlchemy 2, declarative).

Four tables:

* ``subjects``: a pseudonymous study code only (never a name), body mass (kg), height (m), sex, affected side;
* ``sessions``: one analysed trial or exoskeleton run of a subject: date, task, source (``lab_trial``,
  ``exo_run``, ``import``), the SHA-256 of its primary source file, the mass/height used to normalise it,
  device settings, software version and model hashes (JSON);
* ``metrics``: one row per session, one nullable column per summary metric (NULL = not available from that
  source, never 0); units are in the column names (``_pct_bw_ht``: percent body weight times height;
  ``_bw``: body weights; ``_s``: times seconds);
* ``raw_files``: the signals stay in their files (MCAP, CSV, lab files), referenced by path + SHA-256 and
  whether the file is encrypted at rest.

The schema is created and changed only by the Alembic migrations in ``runtime/clinic/migrations``;
``tests/test_clinic_store.py`` checks that the migrated database matches these classes.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SOURCES = ("lab_trial", "exo_run", "import")
SIDES = ("left", "right")
AFFECTED_SIDES = ("left", "right", "both", "none")
SEXES = ("female", "male", "other", "unknown")

#: metric column -> (unit, what it is). Every metric is NULL when its source does not provide it.
METRICS: dict[str, tuple[str, str]] = {
    "peak_kam_pct_bw_ht": ("%BW*ht", "peak external knee adduction moment in stance, mean over stances"),
    "impulse_kam_pct_bw_ht_s": ("%BW*ht*s", "KAM impulse (time integral over stance), mean over stances"),
    "peak_kem_pct_bw_ht": ("%BW*ht", "peak internal knee extension moment in stance, mean over stances"),
    "impulse_kem_pct_bw_ht_s": ("%BW*ht*s", "KEM impulse over stance, mean over stances"),
    "peak_kcf_medial_bw": ("BW", "peak medial tibiofemoral contact force in stance"),
    "peak_kcf_lateral_bw": ("BW", "peak lateral tibiofemoral contact force in stance"),
    "peak_kcf_total_bw": ("BW", "peak total tibiofemoral contact force in stance"),
    "medial_load_share": ("fraction", "medial / (medial + lateral) contact-force impulse over stance"),
    "cocontraction_index": ("0..2", "quadriceps-hamstrings co-contraction index (Rudolph 2000), mean over stance"),
    "limb_symmetry_pct": ("%", "peak vertical GRF of the limb of interest / contralateral limb, complete stances"),
    "assistance_impulse_nm_s": ("N*m*s", "time integral of |commanded assistance torque| (exoskeleton runs)"),
    "assistance_peak_nm": ("N*m", "peak |commanded assistance torque| (exoskeleton runs)"),
}


class Base(DeclarativeBase):
    pass


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    mass_kg: Mapped[float] = mapped_column(Float, nullable=False)   # kg at enrolment; sessions keep their own
    height_m: Mapped[float] = mapped_column(Float, nullable=False)
    sex: Mapped[str] = mapped_column(String(8), nullable=False, default="unknown")
    affected_side: Mapped[str] = mapped_column(String(5), nullable=False, default="none")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    sessions: Mapped[list["Session"]] = relationship(back_populates="subject")


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("subject_id", "session_date", "task", "source_sha256",
                                       name="uq_sessions_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), nullable=False, index=True)
    session_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    task: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    trial_name: Mapped[str] = mapped_column(String(128), nullable=False)
    side: Mapped[str] = mapped_column(String(5), nullable=False)
    source_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    body_mass_kg: Mapped[float] = mapped_column(Float, nullable=False)   # kg used to normalise this session
    height_m: Mapped[float] = mapped_column(Float, nullable=False)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    device_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    software_version: Mapped[str] = mapped_column(String(64), nullable=False)
    model_hashes: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    notes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    subject: Mapped[Subject] = relationship(back_populates="sessions")
    metrics: Mapped["Metrics | None"] = relationship(back_populates="session", cascade="all, delete-orphan")
    raw_files: Mapped[list["RawFile"]] = relationship(back_populates="session", cascade="all, delete-orphan")


class Metrics(Base):
    __tablename__ = "metrics"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    stances: Mapped[int | None] = mapped_column(Integer, nullable=True)
    peak_kam_pct_bw_ht: Mapped[float | None] = mapped_column(Float, nullable=True)
    impulse_kam_pct_bw_ht_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_kem_pct_bw_ht: Mapped[float | None] = mapped_column(Float, nullable=True)
    impulse_kem_pct_bw_ht_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_kcf_medial_bw: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_kcf_lateral_bw: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_kcf_total_bw: Mapped[float | None] = mapped_column(Float, nullable=True)
    medial_load_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    cocontraction_index: Mapped[float | None] = mapped_column(Float, nullable=True)
    limb_symmetry_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    assistance_impulse_nm_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    assistance_peak_nm: Mapped[float | None] = mapped_column(Float, nullable=True)

    session: Mapped[Session] = relationship(back_populates="metrics")


class RawFile(Base):
    __tablename__ = "raw_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    session: Mapped[Session] = relationship(back_populates="raw_files")
