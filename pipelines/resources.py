"""Dagster resources: the project configuration and the working DuckDB warehouse.

DuckDB allows one writing process per file, so every asset opens the file through this
resource inside the one run process (the job uses the in-process executor); nothing else
writes to the working file. Within a run the resource keeps one DuckDB instance open from the
first asset to the end of the run, and each asset gets its own connection to it (its temp
tables and macros are its own, as before): reopening the file for every asset reloaded the
catalog and read back into fresh memory the blocks the previous asset had just written, about
5 s of a 1M-customer night (see bench/HISTORY.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import duckdb
from dagster import (
    ConfigurableResource,
    DagsterInvariantViolationError,
    InitResourceContext,
    OpExecutionContext,
)
from pydantic import PrivateAttr

from pipelines.config import ProfilesConfig, load_config
from pipelines.faults import crash_point
from transforms.normalize import register_normalizers


def open_warehouse(cfg: ProfilesConfig, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = cfg.warehouse_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Extensions cannot be downloaded here (and a nightly job should not try): fail fast instead.
    con = duckdb.connect(str(path), read_only=read_only,
                         config={"autoinstall_known_extensions": False})
    con.execute(f"SET memory_limit = '{cfg.warehouse.memory_limit}'")
    if cfg.warehouse.keep_freed_memory:
        _keep_freed_memory(con, cfg.warehouse.memory_limit)
    con.execute(f"SET temp_directory = '{path.parent / 'duckdb_tmp'}'")
    if cfg.warehouse.threads:
        con.execute(f"SET threads = {int(cfg.warehouse.threads)}")
    return _with_normalizers(con, cfg)


def _keep_freed_memory(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    """Keep the memory DuckDB frees for its next step instead of handing it back to the OS.
    A night's steps each build and drop gigabytes of hash tables and sorts; memory returned
    and touched again costs page faults, and on a VM whose host reclaims freed guest memory
    the next first touch is slow (measured here: about 6 s per GiB). Bounded by the limit."""
    con.execute(f"SET allocator_bulk_deallocation_flush_threshold = '{memory_limit}'")
    # An instance already open in this process with a larger one keeps it (it cannot shrink).
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute(f"SET block_allocator_memory = '{memory_limit}'")


def _with_normalizers(con: duckdb.DuckDBPyConnection, cfg: ProfilesConfig) -> duckdb.DuckDBPyConnection:
    """The cleaning macros are TEMP: every connection registers its own."""
    register_normalizers(con, cfg.nullish_values, cfg.warehouse.timezone, cfg.phone_region)
    return con


class Warehouse(ConfigurableResource):
    """Opens the working warehouse. ``config_path`` empty = PROFILES_CONFIG or profiles.yaml.
    ``full_rebuild``: restage every raw row and retrain the models instead of the incremental
    night (`profiles build --full`)."""

    config_path: str = ""
    full_rebuild: bool = False
    # Set during a run (setup_for_execution): the run's instance, opened by the first connect.
    _in_run: bool = PrivateAttr(default=False)
    _run_instance: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._in_run = True

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self._in_run = False
        if self._run_instance is not None:
            self._run_instance.close()  # checkpoints the file
            self._run_instance = None

    @cached_property
    def config(self) -> ProfilesConfig:
        return load_config(self.config_path or None)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        crash_point(_current_step())
        if self._in_run:
            if self._run_instance is None:
                self._run_instance = open_warehouse(self.config)
            con = _with_normalizers(self._run_instance.cursor(), self.config)
        else:  # outside a run (CLI, tests): a connection of its own
            con = open_warehouse(self.config)
        try:
            yield con
        finally:
            con.close()


def _current_step() -> str:
    try:
        return OpExecutionContext.get().op.name
    except DagsterInvariantViolationError:  # called outside a run (CLI, tests)
        return ""
