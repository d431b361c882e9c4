"""The Redis key layout, in one place.

Every key phaser writes starts with the configured prefix. Index sets are
sorted sets whose members all have score 0 and are job ids; job ids are
time-ordered (see `phaser.services.ids`), so lexicographic order is creation
order and ``ZREVRANGEBYLEX`` pages through them newest first with an exact
cursor, at a cost that does not depend on how many jobs exist.

Each job has three index entries: its owner's list of all jobs, its owner's
list of jobs of one task in one phase, and the destruction schedule (a
fourth if it has a run id: its owner's jobs with that run id). Lists
by task alone or by phase alone merge the task-and-phase lists (a bounded
number: tasks × phases); a small hash per owner counts jobs per phase (for
quotas) and a set names the tasks an owner has used. Fewer entries per job
is what keeps a finished job under a kilobyte of Redis memory.

The Lua scripts receive index *prefixes* and append a phase name, because the
phase a job leaves is only known inside the script. This is why phaser needs a
single Redis (or a cluster-free setup): not every key is declared up front.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["JobKeys", "KeyLayout", "entry_name"]


def entry_name(job_id: str, attempt: int) -> str:
    """The name of the queue entry (arq job id) of one attempt of a job:
    each attempt has its own, so a leftover of one can neither block nor
    run another."""
    return f"{job_id}.{attempt}"


def _part(value: str | None) -> str:
    """Escape a user-supplied key component (``:`` cannot leak through)."""
    return quote(value or "", safe="")


@dataclass(frozen=True, slots=True)
class JobKeys:
    """Keys touched when one job changes."""

    record: str
    by_owner: str
    by_task_phase_prefix: str
    by_run_prefix: str
    counts: str
    tasks: str
    destruction: str
    deadline: str
    heartbeat: str
    queued: str
    scheduled: str


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Builds every Redis key and channel name from one prefix."""

    prefix: str

    @property
    def events(self) -> str:
        """Pub/sub channel of job events."""
        return f"{self.prefix}:events"

    @property
    def destruction(self) -> str:
        """Schedule of destruction times (score: ms since the epoch)."""
        return f"{self.prefix}:schedule:destruction"

    @property
    def deadline(self) -> str:
        """Schedule of execution deadlines of running jobs (ms)."""
        return f"{self.prefix}:schedule:deadline"

    @property
    def heartbeat(self) -> str:
        """Last heartbeats of running jobs (ms since the epoch)."""
        return f"{self.prefix}:schedule:heartbeat"

    @property
    def queued(self) -> str:
        """When queued jobs entered the queue (ms since the epoch)."""
        return f"{self.prefix}:schedule:queued"

    @property
    def dependants_prefix(self) -> str:
        """Prefix of the sets of jobs waiting for a job (its id is
        appended)."""
        return f"{self.prefix}:dependants:"

    def dependants(self, job_id: str) -> str:
        """The jobs waiting for a job."""
        return self.dependants_prefix + job_id

    @property
    def after_checks(self) -> str:
        """Jobs waiting for others, scored by when maintenance last
        checked them (a backstop: their dependencies tell them)."""
        return f"{self.prefix}:schedule:after"

    def by_parent_prefix(self, owner: str | None) -> str:
        """Prefix of an owner's index of a parent's children (the parent
        id is appended)."""
        return f"{self.prefix}:owner:{_part(owner)}:parent:"

    def by_parent(self, owner: str | None, parent_id: str) -> str:
        """An owner's jobs whose parent is ``parent_id``."""
        return self.by_parent_prefix(owner) + parent_id

    @property
    def webhook_prefix(self) -> str:
        """Prefix of the webhook outbox: ``due`` (deliveries by when they
        are due), ``seq``, ``d:`` + delivery id (one delivery), and
        ``attempts:`` + job id (its attempts, newest last)."""
        return f"{self.prefix}:webhook:"

    @property
    def limits_prefix(self) -> str:
        """Prefix of the concurrency-limit keys (``run:``, ``wait:`` and
        a group name; ``groups``: every group in use)."""
        return f"{self.prefix}:limit:"

    @property
    def record_prefix(self) -> str:
        """Prefix of job records (the id is appended)."""
        return f"{self.prefix}:job:"

    @property
    def scheduled(self) -> str:
        """Sorted set of HELD jobs with a start time (``run_after``), and
        of QUEUED jobs whose next send is deferred (a retry's backoff),
        scored by that time."""
        return f"{self.prefix}:scheduled"

    @property
    def workers(self) -> str:
        """When each worker process was last seen (ms since the epoch)."""
        return f"{self.prefix}:workers"

    @property
    def owners(self) -> str:
        """Set of the names of every owner who has created a job."""
        return f"{self.prefix}:owners"

    @property
    def throughput_prefix(self) -> str:
        """Prefix of the per-minute throughput counters (written by the
        transition script)."""
        return f"{self.prefix}:stats:"

    def throughput(self, kind: str, minute: int) -> str:
        """Counter of jobs started or finished in one minute (minutes
        since the epoch); expires after two hours."""
        return f"{self.throughput_prefix}{kind}:{minute}"

    def lease(self, name: str) -> str:
        """A lease that one process at a time may hold."""
        return f"{self.prefix}:lease:{name}"

    def record(self, job_id: str) -> str:
        """Hash holding one job record."""
        return f"{self.prefix}:job:{job_id}"

    def by_owner(self, owner: str | None) -> str:
        """All jobs of an owner."""
        return f"{self.prefix}:owner:{_part(owner)}:all"

    def counts(self, owner: str | None) -> str:
        """Hash of an owner's job counts per phase."""
        return f"{self.prefix}:owner:{_part(owner)}:counts"

    def tasks(self, owner: str | None) -> str:
        """Set of the tasks an owner has created jobs of."""
        return f"{self.prefix}:owner:{_part(owner)}:tasks"

    def by_task_phase(self, owner: str | None, task: str, phase: str) -> str:
        """An owner's jobs of one task in one phase."""
        return self.by_task_phase_prefix(owner, task) + phase

    def by_task_phase_prefix(self, owner: str | None, task: str) -> str:
        """Prefix of `by_task_phase`; the scripts append the phase."""
        return f"{self.prefix}:owner:{_part(owner)}:task:{_part(task)}:phase:"

    def by_run(self, owner: str | None, run_id: str) -> str:
        """An owner's jobs with one run id."""
        return self.by_run_prefix(owner) + run_id

    def idempotency(self, owner: str | None, key: str) -> str:
        """The job an owner's idempotency key made, and its request's
        fingerprint (the key is hashed: any text, bounded length)."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"{self.prefix}:owner:{_part(owner)}:idem:{digest}"

    def by_run_prefix(self, owner: str | None) -> str:
        """Prefix of `by_run`; the scripts append the run id (raw: it is
        the last part of the key, so it cannot reach another key)."""
        return f"{self.prefix}:owner:{_part(owner)}:run:"

    def job(self, job_id: str, owner: str | None, task: str) -> JobKeys:
        """Every key a change to this job touches."""
        return JobKeys(
            record=self.record(job_id),
            by_owner=self.by_owner(owner),
            by_task_phase_prefix=self.by_task_phase_prefix(owner, task),
            by_run_prefix=self.by_run_prefix(owner),
            counts=self.counts(owner),
            tasks=self.tasks(owner),
            destruction=self.destruction,
            deadline=self.deadline,
            heartbeat=self.heartbeat,
            queued=self.queued,
            scheduled=self.scheduled,
        )
