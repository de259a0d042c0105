"""Shared fixtures: a tiny hand-made landing folder and an isolated warehouse per test."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from handmade import write_exports  # noqa: E402

from transforms.identity import ensure_identity_schema  # noqa: E402
from transforms.normalize import register_normalizers  # noqa: E402
from transforms.raw import ensure_raw_schema  # noqa: E402
from transforms.staging import ensure_staging_schema  # noqa: E402


@pytest.fixture
def con():
    connection = duckdb.connect()
    register_normalizers(connection)
    yield connection
    connection.close()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Hand-made exports in tmp_path/landing; warehouse and exports under tmp_path."""
    landing = write_exports(tmp_path / "landing")
    monkeypatch.setenv("PROFILES_LANDING", str(landing))
    monkeypatch.setenv("PROFILES_WAREHOUSE", str(tmp_path / "warehouse" / "profiles.duckdb"))
    monkeypatch.setenv("PROFILES_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setenv("PROFILES_LOG_LEVEL", "WARNING")
    return tmp_path


@pytest.fixture
def wh(con):
    """An in-memory warehouse with the raw, staging and identity schemas."""
    ensure_raw_schema(con)
    ensure_staging_schema(con)
    ensure_identity_schema(con)
    return con
