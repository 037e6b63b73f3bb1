"""The clinical session store: ``open_store(url)`` -> :class:`ClinicStore` (SQLite default, PostgreSQL by URL).

Opening upgrades the database to the newest Alembic revision (``runtime/clinic/migrations``). Every write is
one transaction: a session is recorded with its subject (added on first use), metrics and raw file references
together, or not at all. Rejected, each leaving the store unchanged:

* a subject without a body mass or height, or out of range, or whose id is not a pseudonymous study code
  (letters, digits, ``_``, ``-``, at least one digit: ``P017``, ``GC5_PS``; ids without a digit may be names);
* a session whose subject, date, task and source-file SHA-256 match one already stored (:class:`DuplicateSessionError`);
* a raw file that is missing, empty or does not parse as its lab format (:class:`CorruptFileError`).

URLs: ``sqlite:///runs/clinic.db`` (default; the folder is created), ``postgresql+psycopg://user@/db?host=/sock``.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.clinic.files import CorruptFileError, FileRef, check_file
from runtime.clinic.schema import AFFECTED_SIDES, METRICS, SEXES, SIDES, SOURCES

DEFAULT_URL = "sqlite:///runs/clinic.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

__all__ = ["DEFAULT_URL", "ClinicStore", "CorruptFileError", "DuplicateSessionError", "FileRef", "SessionRecord",
           "StoreError", "SubjectInfo", "SubjectRejectedError", "open_store", "upgrade"]


class StoreError(ValueError):
    """A write was rejected; the store is unchanged."""


class DuplicateSessionError(StoreError):
    """The same session (subject, date, task, source-file hash) is already stored."""


class SubjectRejectedError(StoreError):
    """Subject data are missing, out of range, inconsistent with the stored subject, or look like a name."""


@dataclass(frozen=True)
class SubjectInfo:
    """A subject as the store keeps it: pseudonymous study code, mass (kg), height (m), sex, affected side."""

    pseudonym: str
    mass_kg: float | None
    height_m: float | None
    sex: str = "unknown"
    affected_side: str = "none"

    def validate(self) -> None:
        p = self.pseudonym
        if not isinstance(p, str) or not _PSEUDONYM.match(p):
            raise SubjectRejectedError(f"subject.pseudonym = {p!r}: allowed letters, digits, '_' and '-', 1..64 "
                                       "characters (a pseudonymous study code, never a name)")
        if not any(c.isdigit() for c in p):
            raise SubjectRejectedError(f"subject.pseudonym = {p!r}: a study code must contain a digit (e.g. P017, "
                                       "GC5_PS); an id of letters only may be a name and is not stored")
        for key, lo, hi, unit in (("mass_kg", 20.0, 250.0, "kg"), ("height_m", 0.5, 2.5, "m")):
            v = getattr(self, key)
            if v is None:
                raise SubjectRejectedError(f"subject {p}: {key} is missing (required: knee loads are normalised "
                                           "by body weight and height)")
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise SubjectRejectedError(f"subject {p}: {key} = {v!r}: allowed {lo:g} <= {key} <= {hi:g} {unit}")
        if self.sex not in SEXES:
            raise SubjectRejectedError(f"subject {p}: sex = {self.sex!r}: allowed {', '.join(SEXES)}")
        if self.affected_side not in AFFECTED_SIDES:
            raise SubjectRejectedError(f"subject {p}: affected_side = {self.affected_side!r}: "
                                       f"allowed {', '.join(AFFECTED_SIDES)}")


@dataclass
class SessionRecord:
    """One session to record. ``source_file``: the primary input whose SHA-256 identifies the session (a
    ``.trc`` for lab trials, an MCAP for exoskeleton runs, the results file for imports); ``raw_files`` every
    file it refers to (the source file is added as role ``source`` if not listed). ``metrics``: metric -> value
    or None (see :data:`runtime.clinic.schema.METRICS`); NaN is stored as NULL."""

    subject: SubjectInfo
    task: str
    source: str
    trial_name: str
    side: str
    source_file: str
    session_date: dt.date | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    stances: int | None = None
    raw_files: list[FileRef] = field(default_factory=list)
    analysis: dict[str, Any] | None = None
    device_settings: dict[str, Any] | None = None
    software_version: str = ""
    model_hashes: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    body_mass_kg: float | None = None        # mass used for the normalisation (default: the subject's)
    height_m: float | None = None

    def validate(self) -> None:
        self.subject.validate()
        if self.source not in SOURCES:
            raise StoreError(f"session.source = {self.source!r}: allowed {', '.join(SOURCES)}")
        if self.side not in SIDES:
            raise StoreError(f"session.side = {self.side!r}: allowed {', '.join(SIDES)}")
        if not self.task or len(self.task) > 64:
            raise StoreError(f"session.task = {self.task!r}: 1..64 characters")
        if not self.trial_name or len(self.trial_name) > 128:
            raise StoreError(f"session.trial_name = {self.trial_name!r}: 1..128 characters")
        unknown = set(self.metrics) - set(METRICS)
        if unknown:
            raise StoreError(f"session.metrics: unknown metric(s) {sorted(unknown)}; allowed: {', '.join(METRICS)}")
        for k, v in self.metrics.items():
            if v is not None and not isinstance(v, (int, float)):
                raise StoreError(f"session.metrics.{k} = {v!r}: a number or None")
        if self.session_date is not None and not isinstance(self.session_date, dt.date):
            raise StoreError(f"session.session_date = {self.session_date!r}: a date (YYYY-MM-DD) or None")


def _clean(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _migrate(engine, revision: str, direction: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def upgrade(engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` up to ``revision`` with the package's Alembic migrations."""
    _migrate(engine, revision, "upgrade")


def downgrade(engine, revision: str) -> None:
    """Take the database back to ``revision`` (``"base"``: no tables); data in dropped tables are lost."""
    _migrate(engine, revision, "downgrade")


def current_revision(engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _engine(url: str):
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise ValueError(f"--db = {url!r}: not a database URL ({exc}); e.g. {DEFAULT_URL}") from None
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u)

        @event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn, _rec):         # SQLite enforces foreign keys only when asked
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        return create_engine(u)
    raise ValueError(f"--db = {url!r}: backend {u.get_backend_name()!r} not supported (sqlite or postgresql)")


def open_store(url: str = DEFAULT_URL) -> "ClinicStore":
    """Open (create if needed) the store at ``url`` and upgrade it to the newest schema revision."""
    engine = _engine(url)
    upgrade(engine)
    return ClinicStore(engine)


class ClinicStore:
    """Reads and writes of the session store. Each public write is one transaction."""

    def __init__(self, engine) -> None:
        from sqlalchemy.orm import sessionmaker

        self.engine = engine
        self._Session = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "ClinicStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def _subject_row(self, db, info: SubjectInfo):
        from sqlalchemy import select

        from runtime.clinic.schema import Subject

        row = db.execute(select(Subject).where(Subject.pseudonym == info.pseudonym)).scalar_one_or_none()
        if row is None:
            row = Subject(pseudonym=info.pseudonym, mass_kg=float(info.mass_kg), height_m=float(info.height_m),
                          sex=info.sex, affected_side=info.affected_side, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
            db.add(row)
            db.flush()
        elif (row.sex, row.affected_side) != (info.sex, info.affected_side) and "unknown" not in (row.sex, info.sex):
            raise SubjectRejectedError(
                f"subject {info.pseudonym}: stored as sex={row.sex}, affected_side={row.affected_side}; this session "
                f"says sex={info.sex}, affected_side={info.affected_side}")
        return row

    def add_subject(self, info: SubjectInfo) -> int:
        """Add a subject (or return the id of the stored one with this pseudonym)."""
        info.validate()
        with self._Session.begin() as db:
            return self._subject_row(db, info).id

    def add_session(self, rec: SessionRecord) -> int:
        """Record one session with its subject, metrics and raw files in one transaction; returns its id."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from runtime.clinic.schema import Metrics, RawFile, Session

        rec.validate()
        refs = list(rec.raw_files)
        if not any(Path(r.path) == Path(rec.source_file) for r in refs):
            refs.insert(0, FileRef("source", rec.source_file))
        try:
            with self._Session.begin() as db:
                subject = self._subject_row(db, rec.subject)
                source_hash = None
                hashed: list[tuple[FileRef, str, int]] = []
                for ref in refs:                      # inside the transaction: a bad file rolls the subject back
                    digest, size = check_file(ref)
                    hashed.append((ref, digest, size))
                    if Path(ref.path) == Path(rec.source_file):
                        source_hash = digest
                date_clause = (Session.session_date.is_(None) if rec.session_date is None
                               else Session.session_date == rec.session_date)
                dup = db.execute(select(Session.id, Session.trial_name).where(
                    Session.subject_id == subject.id, date_clause, Session.task == rec.task,
                    Session.source_sha256 == source_hash)).first()
                if dup is not None:
                    raise DuplicateSessionError(
                        f"duplicate session: subject {rec.subject.pseudonym}, date {rec.session_date or 'unknown'}, "
                        f"task {rec.task!r}, source file {rec.source_file} (sha256 {source_hash[:12]}...) is already "
                        f"stored as session {dup.id} ({dup.trial_name}); nothing written")
                s = Session(subject_id=subject.id, session_date=rec.session_date, task=rec.task, source=rec.source,
                            trial_name=rec.trial_name, side=rec.side, source_sha256=source_hash,
                            body_mass_kg=float(rec.body_mass_kg or rec.subject.mass_kg),
                            height_m=float(rec.height_m or rec.subject.height_m), analysis=rec.analysis,
                            device_settings=rec.device_settings, software_version=rec.software_version or "unknown",
                            model_hashes=rec.model_hashes, notes=list(rec.notes),
                            created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
                db.add(s)
                db.flush()
                db.add(Metrics(session_id=s.id, stances=rec.stances,
                               **{k: _clean(v) for k, v in rec.metrics.items()}))
                for ref, digest, size in hashed:
                    db.add(RawFile(session_id=s.id, role=ref.role, path=str(Path(ref.path).resolve()), sha256=digest,
                                   size_bytes=size, encrypted=bool(ref.encrypted)))
                db.flush()
                return s.id
        except IntegrityError as exc:       # e.g. a concurrent writer stored the same session between check and insert
            cls = DuplicateSessionError if "uq_sessions_identity" in str(exc.orig) or "UNIQUE" in str(exc.orig) \
                else StoreError
            raise cls(f"session rejected by the database ({exc.orig}); nothing written") from None

    # ------------------------------------------------------------------ reads

    def counts(self) -> dict[str, int]:
        """Rows per table (for reports and tests)."""
        from sqlalchemy import func, select

        from runtime.clinic.schema import Metrics, RawFile, Session, Subject

        with self._Session() as db:
            return {t.__tablename__: int(db.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in (Subject, Session, Metrics, RawFile)}

    def subjects(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from runtime.clinic.schema import Subject

        with self._Session() as db:
            return [{"pseudonym": s.pseudonym, "mass_kg": s.mass_kg, "height_m": s.height_m, "sex": s.sex,
                     "affected_side": s.affected_side} for s in db.execute(select(Subject).order_by(Subject.pseudonym)).scalars()]

    def sessions(self, pseudonym: str | None = None) -> list[dict[str, Any]]:
        """Sessions (with metrics and raw files) of one subject or all, ordered by subject, date (unknown last),
        trial name and id."""
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        from runtime.clinic.schema import Session, Subject

        q = (select(Session).join(Subject).options(selectinload(Session.metrics), selectinload(Session.raw_files),
                                                   selectinload(Session.subject)))
        if pseudonym is not None:
            q = q.where(Subject.pseudonym == pseudonym)
        out = []
        with self._Session() as db:
            for s in db.execute(q).scalars():
                m = s.metrics
                out.append({
                    "id": s.id, "subject": s.subject.pseudonym, "session_date": s.session_date, "task": s.task,
                    "source": s.source, "trial_name": s.trial_name, "side": s.side, "source_sha256": s.source_sha256,
                    "body_mass_kg": s.body_mass_kg, "height_m": s.height_m, "software_version": s.software_version,
                    "model_hashes": s.model_hashes, "analysis": s.analysis, "device_settings": s.device_settings,
                    "notes": s.notes, "stances": m.stances if m else None,
                    "metrics": {k: (getattr(m, k) if m else None) for k in METRICS},
                    "raw_files": [{"role": r.role, "path": r.path, "sha256": r.sha256, "size_bytes": r.size_bytes,
                                   "encrypted": r.encrypted} for r in s.raw_files],
                })
        out.sort(key=lambda r: (r["subject"], r["session_date"] is None, r["session_date"] or dt.date.min,
                                r["trial_name"], r["id"]))
        return out


def parse_date(text: str | None, field_name: str = "date") -> dt.date | None:
    """``YYYY-MM-DD`` -> date; None/'' -> None; else ValueError naming the field and value."""
    if text in (None, ""):
        return None
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{field_name} = {text!r}: expected YYYY-MM-DD") from None

