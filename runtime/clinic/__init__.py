"""Clinical backend: a session store, longitudinal tracking of knee loading, batch analysis and import.

* :mod:`runtime.clinic.schema`    ORM tables (subjects, sessions, metrics, raw file references) and the metric list
* :mod:`runtime.clinic.store`     ``open_store(url)`` (SQLite default, PostgreSQL by URL; Alembic upgrade at open),
  one transaction per write, rejected writes leave the store unchanged
* :mod:`runtime.clinic.files`     SHA-256 of referenced files, lab-file readability check, Fernet encryption at rest
* :mod:`runtime.clinic.metrics`   summary metrics of one analysed trial (NULL where the analysis gives none)
* :mod:`runtime.clinic.batch`     the chain over many trials on local processes or a Ray cluster, with retries
* :mod:`runtime.clinic.importers` OpenSim results (ID / SO / JR ``.sto``/``.mot``) and the shared lab results
* :mod:`runtime.clinic.exo_runs`  exoskeleton runs: assistance delivered from the run's log
* :mod:`runtime.clinic.config`    ``launch/config/clinic.yaml``: normal ranges and flag rules with their sources
* :mod:`runtime.clinic.trend`     per-patient metrics over sessions, normal ranges, flags, plots

Commands: ``exo batch``, ``exo ingest``, ``exo import``, ``exo trend`` (``runtime/cli/commands/clinic.py``).
Module imports stay light here; SQLAlchemy, Alembic, Ray and the models load where used.
"""
