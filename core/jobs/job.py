"""What every background job of the conductor answers, and the book of the jobs started here.

A training run waiting for or holding its device (core/jobs/training.py), a feature map computed for an
old run (core/jobs/maps.py) and a sweep worker process (core/jobs/sweeps.py) run very differently, yet the
pages ask each the same two things: is it still going, and please stop. `Job` is that interface;
`JobBook` keeps the jobs of one kind by what they work for (a run id, a sweep id), so each kind answers
"the latest job of X" and "the live jobs of X" the same way.
"""
from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar


class Job(Protocol):
    """A piece of work running in the background of this process (or in a child process it started)."""

    @property
    def key(self) -> str:
        """What it works for: the run id of a training or map job, the sweep id of a sweep worker."""
        ...

    def stop(self) -> None:
        """Ask it to end soon (it saves what it must first); returns at once."""
        ...

    def is_alive(self) -> bool:
        """True while it waits or works; False once it has ended, however it ended."""
        ...


J = TypeVar("J", bound=Job)


class JobBook(Generic[J]):
    """The jobs of one kind started here, by key. Ended jobs are forgotten when a newer one of the same key
    is added, except the latest, so a page can still say how the last try ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, list[J]] = {}

    def add(self, job: J) -> J:
        with self._lock:
            kept = [j for j in self._jobs.get(job.key, []) if j.is_alive()]
            self._jobs[job.key] = [*kept, job]
        return job

    def latest(self, key: str) -> J | None:
        """The job of `key` added last (going or ended), or None when none was started here."""
        with self._lock:
            jobs = self._jobs.get(key)
            return jobs[-1] if jobs else None

    def alive(self, key: str) -> list[J]:
        """The jobs of `key` still waiting or working, oldest first."""
        with self._lock:
            return [j for j in self._jobs.get(key, []) if j.is_alive()]
