"""Fault injection for the recovery tests: ``PROFILES_CRASH_AT=<point>`` kills the process
(SIGKILL, no cleanup, like the OOM killer or a power cut) when the run reaches that point.

Points: the start of any asset (its name, e.g. ``customer_identity``) and, inside publishing,
``publish:exports_staged`` (every export written aside, nothing renamed) and
``publish:serving_built`` (the new serving file written aside, not yet renamed).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "PROFILES_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
