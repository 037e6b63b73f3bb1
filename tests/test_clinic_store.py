"""Session store: migrations, round trip, and rejected writes leaving the store unchanged (SQLite and PostgreSQL)."""
import datetime as dt
import hashlib
import shutil

import pytest

from runtime.clinic.files import CorruptFileError, FileRef
from runtime.clinic.schema import METRICS
from runtime.clinic.store import (DuplicateSessionError, SessionRecord, SubjectInfo, SubjectRejectedError,
                                  current_revision, downgrade, open_store, upgrade)

from _support import needs_shared_data, shared_data, shared_data_path  # noqa: E402

DATA = shared_data_path()   # $EXO_SHARED_DATA or ../shared/data
TRC = DATA / "GC5_PS" / "trc" / "PS_ngait_og_ss1.trc"
GRF = DATA / "GC5_PS" / "grf" / "PS_ngait_og_ss1_kinetics.mot"


@pytest.fixture(scope="module")
def pg():
    from _postgres import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'clinic.db'}" if request.param == "sqlite" else request.getfixturevalue("pg").new_database()
    s = open_store(url)
    yield s
    s.close()


def _record(subject=None, *, date=dt.date(2026, 3, 2), source_file=TRC, metrics=None, raw=()):
    shared_data("GC5_PS", "trc", "PS_ngait_og_ss1.trc")      # the files it refers to: skip when absent
    return SessionRecord(subject=subject or SubjectInfo("P017", 75.0, 1.80, "male", "left"), task="walking",
                         source="lab_trial", trial_name="walk1", side="left", source_file=str(source_file),
                         session_date=date, metrics=metrics if metrics is not None else
                         {"peak_kam_pct_bw_ht": 2.73, "peak_kcf_total_bw": None, "cocontraction_index": 0.0},
                         stances=1, raw_files=[FileRef("grf", str(GRF)), *raw], software_version="test",
                         model_hashes={"m": "x"}, notes=["n"])


def test_migrated_schema_is_head_and_matches_the_orm(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from runtime.clinic.schema import Base

    assert current_revision(store.engine) == "0001_initial"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    downgrade(store.engine, "base")                     # downgrade drops every table ...
    assert current_revision(store.engine) is None
    upgrade(store.engine)                               # ... and the upgrade brings them back
    assert store.counts() == {"subjects": 0, "sessions": 0, "metrics": 0, "raw_files": 0}


def test_session_round_trip_keeps_null_as_null_and_hashes_files(store):
    sid = store.add_session(_record())
    (s,) = store.sessions("P017")
    assert s["id"] == sid and s["session_date"] == dt.date(2026, 3, 2)
    assert s["metrics"]["peak_kam_pct_bw_ht"] == 2.73
    assert s["metrics"]["cocontraction_index"] == 0.0            # a real zero stays zero ...
    assert s["metrics"]["peak_kcf_total_bw"] is None             # ... and missing stays NULL
    assert all(s["metrics"][k] is None for k in METRICS if k not in ("peak_kam_pct_bw_ht", "cocontraction_index"))
    files = {r["role"]: r for r in s["raw_files"]}
    assert set(files) == {"source", "grf"}
    for role, path in (("source", TRC), ("grf", GRF)):
        assert files[role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert files[role]["size_bytes"] == path.stat().st_size and files[role]["encrypted"] is False
    assert s["source_sha256"] == files["source"]["sha256"]
    assert store.subjects() == [{"pseudonym": "P017", "mass_kg": 75.0, "height_m": 1.8, "sex": "male",
                                 "affected_side": "left"}]


def test_nan_metric_is_stored_as_null(store):
    store.add_session(_record(metrics={"peak_kam_pct_bw_ht": float("nan")}))
    assert store.sessions("P017")[0]["metrics"]["peak_kam_pct_bw_ht"] is None


def test_duplicate_session_is_rejected_and_changes_nothing(store):
    store.add_session(_record())
    before = store.counts()
    with pytest.raises(DuplicateSessionError, match="duplicate session: subject P017, date 2026-03-02"):
        store.add_session(_record(metrics={"peak_kam_pct_bw_ht": 9.9}))
    assert store.counts() == before
    assert store.sessions("P017")[0]["metrics"]["peak_kam_pct_bw_ht"] == 2.73
    store.add_session(_record(date=dt.date(2026, 4, 2)))          # same file on another date is a new session
    assert store.counts()["sessions"] == 2


def test_duplicate_with_unknown_date_is_rejected(store):
    store.add_session(_record(date=None))
    before = store.counts()
    with pytest.raises(DuplicateSessionError, match="date unknown"):
        store.add_session(_record(date=None))
    assert store.counts() == before


@pytest.mark.parametrize("subject, match", [
    (SubjectInfo("P018", None, 1.7), "mass_kg is missing"),
    (SubjectInfo("P018", 0.0, 1.7), "mass_kg = 0.0: allowed 20 <= mass_kg <= 250 kg"),
    (SubjectInfo("P018", 70.0, None), "height_m is missing"),
    (SubjectInfo("John_Smith", 70.0, 1.7), "must contain a digit"),
    (SubjectInfo("Jane Doe 1", 70.0, 1.7), "never a name"),
    (SubjectInfo("P018", 70.0, 1.7, sex="x"), "sex = 'x'"),
])
def test_bad_subject_is_rejected_and_changes_nothing(store, subject, match):
    store.add_session(_record())
    before = store.counts()
    with pytest.raises(SubjectRejectedError, match=match):
        store.add_session(_record(subject))
    assert store.counts() == before
    assert [s["pseudonym"] for s in store.subjects()] == ["P017"]


@needs_shared_data("GC5_PS", "trc", "PS_ngait_og_ss1.trc")
def test_corrupt_file_is_rejected_and_the_new_subject_is_rolled_back(store, tmp_path):
    bad = tmp_path / "cut.trc"
    lines = TRC.read_text().splitlines(keepends=True)
    bad.write_text("".join(lines[:3]) + "".join(lines[6:40]))     # header rows lost: column labels gone
    before = store.counts()
    with pytest.raises(CorruptFileError, match=r"raw file source = .*cut\.trc.*not a valid \.trc file"):
        store.add_session(_record(SubjectInfo("P019", 80.0, 1.75), source_file=bad))
    assert store.counts() == before                              # the subject inserted first was rolled back
    with pytest.raises(CorruptFileError, match="no such file"):
        store.add_session(_record(raw=(FileRef("emg", str(tmp_path / "missing.c3d")),)))
    assert store.counts() == before


@needs_shared_data("GC5_PS", "trc", "PS_ngait_og_ss1.trc")
def test_file_references_and_encryption_at_rest(tmp_path):
    from cryptography.fernet import InvalidToken

    from runtime.clinic.files import decrypt_bytes, encrypt_file, new_key

    plain = tmp_path / "knee_moments.csv"
    shutil.copy(GRF, plain)
    original = plain.read_bytes()
    key = new_key(tmp_path / "clinic.key")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        new_key(key)
    enc = encrypt_file(plain, key)
    assert not plain.exists() and original not in enc.read_bytes()
    assert decrypt_bytes(enc, key) == original
    with pytest.raises(InvalidToken):
        decrypt_bytes(enc, new_key(tmp_path / "other.key"))
    s = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    s.add_session(_record(raw=(FileRef("analysis_csv", str(enc), encrypted=True),)))
    row = next(r for r in s.sessions("P017")[0]["raw_files"] if r["role"] == "analysis_csv")
    assert row["encrypted"] is True and row["sha256"] == hashlib.sha256(enc.read_bytes()).hexdigest()
    s.close()


def test_bad_urls_are_rejected_naming_the_value():
    with pytest.raises(ValueError, match="--db = 'nonsense'"):
        open_store("nonsense")
    with pytest.raises(ValueError, match="backend 'mysql' not supported"):
        open_store("mysql://u@h/db")
