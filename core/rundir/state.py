"""The states a run can be in, as status.json spells them.

RunState is a string enum, so `RunState.RUNNING == "running"` and json.dumps writes the same bytes as
before: runs written by any earlier version read unchanged.
"""
from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"            # waiting for its device
    RUNNING = "running"          # training now (heartbeat in status.json)
    COMPLETED = "completed"      # trained to the end and tested
    FAILED = "failed"            # stopped by an error; status.json says which
    STOPPED = "stopped"          # stopped by its user; resumable
    PRUNED = "pruned"            # stopped early by a sweep's pruner
    INTERRUPTED = "interrupted"  # said running, but its process is gone (stale heartbeat or dead pid)
    DAMAGED = "damaged"          # a file is unreadable; never written, only read


# Still going: the live view keeps polling, and delete/rename wait.
LIVE_STATES = frozenset({RunState.QUEUED, RunState.RUNNING})
# Ended with a last checkpoint worth continuing from.
RESUMABLE_STATES = frozenset({RunState.STOPPED, RunState.FAILED, RunState.INTERRUPTED})
