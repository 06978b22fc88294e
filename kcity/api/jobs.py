"""Heavy work with bounded concurrency, so that no request storm can exhaust the API.

Two shapes of heavy work share one set of slots (one per core by default):
- a synchronous heavy read (savings, coverage, quality) takes a slot for its duration, or is
  answered 429 with `Retry-After` at once, before it holds a database connection;
- a report is a job: `POST` queues it (429 when `max_jobs` are already queued or running),
  a worker thread runs it when a slot is free, `GET` fetches its state or its file. The
  thread hands the rendering to a child process (`in_process`): a report is seconds of
  CPU under the GIL, which in the API's own process made `/health` wait (bench/api_storm.py).

`/health` and light reads never wait for a slot, and the database pool keeps connections
for them: at most `slots` connections ever do heavy work.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

from kcity.errors import KcityError

RETRY_AFTER_S: Final = 5
KEEP_FINISHED: Final = 100  # finished jobs kept for fetching; the oldest are forgotten

JobState = Literal["queued", "running", "done", "failed"]
T = TypeVar("T")


class Busy(KcityError):
    """Every slot or job place is taken: the caller should retry after `retry_after` s."""

    def __init__(self, what: str, retry_after: int = RETRY_AFTER_S) -> None:
        self.retry_after = retry_after
        super().__init__(f"the server is busy with {what}; retry in {retry_after} s")


@dataclass(frozen=True, slots=True)
class Output:
    """What a finished job produced: a file to download."""

    content: bytes
    media_type: str
    filename: str


@dataclass(slots=True)
class Job:
    """One queued piece of work, owned by a pilot (only callers who see it may fetch it)."""

    id: str
    pilot: str
    state: JobState = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    output: Output | None = None
    error: Exception | None = None


class HeavyWork:
    """The slots, the job queue and the finished jobs of one app."""

    def __init__(self, slots: int, max_jobs: int) -> None:
        self.slots = max(1, slots)
        self.max_jobs = max(1, max_jobs)
        self._slots = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._executor = ThreadPoolExecutor(self.slots, thread_name_prefix="kcity-job")
        self._processes: ProcessPoolExecutor | None = None  # started by the first job

    def in_process(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` (importable, picklable arguments) in a child process and wait;
        called from a job's thread, which holds its slot meanwhile."""
        with self._lock:
            if self._processes is None:
                self._processes = ProcessPoolExecutor(
                    self.slots, mp_context=multiprocessing.get_context("spawn")
                )
            processes = self._processes
        return processes.submit(fn, *args).result()

    @contextmanager
    def slot(self, what: str) -> Iterator[None]:
        """Hold a slot for synchronous heavy work, or raise `Busy` without waiting."""
        if not self._slots.acquire(blocking=False):
            raise Busy(what)
        try:
            yield
        finally:
            self._slots.release()

    def submit(self, pilot: str, work: Callable[[], Output]) -> Job:
        """Queue `work`; raise `Busy` when `max_jobs` are queued or running already."""
        with self._lock:
            active = sum(1 for j in self._jobs.values() if j.state in ("queued", "running"))
            if active >= self.max_jobs:
                raise Busy(f"{active} report jobs")
            job = Job(uuid.uuid4().hex, pilot)
            self._jobs[job.id] = job
            self._forget_old()
        self._executor.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def shutdown(self) -> None:
        """Stop the child processes (a report under way is abandoned; its job is lost with
        the server anyway); a later job starts new ones."""
        with self._lock:
            processes, self._processes = self._processes, None
        if processes is None:
            return
        # The worker processes: no public way to reach them before Python 3.14.
        workers = list((getattr(processes, "_processes", None) or {}).values())
        processes.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()

    def _run(self, job: Job, work: Callable[[], Output]) -> None:
        with self._slots:
            job.state = "running"
            try:
                job.output = work()
                job.state = "done"
            except Exception as exc:  # kept for the caller, who sees it as a 4xx/5xx body
                job.error = exc
                job.state = "failed"

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state in ("done", "failed")]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[key]
