"""generate(): render chunks of persons (in worker processes when there are many) and append
them, in order, to the export files.

Memory is bounded by the chunks in flight (a few per worker), whatever the number of persons.
Every chunk is a pure function of (seed, persons, end_date, years, chunk number), so the
output does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from pipelines.sample.chunk import CHUNK_SIZE, ChunkJob, ChunkOutput, render_chunk, run_context
from pipelines.sample.sink import ExportFiles

MIN_CHUNKS_FOR_WORKERS = 8    # below this, starting processes costs more than it saves
MAX_DEFAULT_WORKERS = 8       # beyond this the process writing the files is the bottleneck
IN_FLIGHT_PER_WORKER = 2


def generate(out_dir: Path, persons: int, seed: int = 42, end_date: date = date(2026, 11, 20),
             years: int = 3, workers: int | None = None) -> dict[str, int]:
    """Write the exports for `persons` people under out_dir; return data rows per file.

    workers: processes rendering chunks (default: the CPU count, at most 8; 1 renders
    in-process). The files are the same whatever the number.
    """
    if persons < 1:
        raise ValueError("persons must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = run_context(seed, persons, end_date, years).window
    jobs = [ChunkJob(seed, persons, end_date, years, chunk_no)
            for chunk_no in range((persons + CHUNK_SIZE - 1) // CHUNK_SIZE)]
    if workers is None:
        workers = min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)
    files = ExportFiles(out_dir, window)
    try:
        for output in _rendered(jobs, workers):
            files.append(output)
    finally:
        counts = files.close()
    return counts


def _start_method() -> str:
    """fork is quick and does not re-run the caller's __main__ (an unguarded script would fail
    under spawn), but is only safe while the process has a single thread."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _rendered(jobs: list[ChunkJob], workers: int) -> Iterator[ChunkOutput]:
    if workers <= 1 or len(jobs) < MIN_CHUNKS_FOR_WORKERS:
        yield from map(render_chunk, jobs)
        return
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque = deque()
        queued = iter(jobs)
        for job in queued:   # a bounded window of chunks in flight keeps memory flat
            pending.append(pool.submit(render_chunk, job))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                break
        while pending:
            output = pending.popleft().result()
            next_job = next(queued, None)
            if next_job is not None:
                pending.append(pool.submit(render_chunk, next_job))
            yield output
