"""The job engine: procrastinate, run on an event loop of the process's own, one per app.

Every background step is a procrastinate job (app/jobs/tasks.py): writing a
transfer's summary, the reconciler's pass, retrying the jobs of a worker
that died. docs/jobs.md says why procrastinate, and how to run workers.

- On PostgreSQL the jobs are rows of procrastinate's tables (migration
  0007). A worker takes a job with `FOR UPDATE SKIP LOCKED`, so one job
  runs once however many instances work; a timer (a periodic task) is
  deferred once per tick across all of them; a job whose worker stopped
  beating its heart is retried by the `retry_stalled` timer.
- On the embedded SQLite default there is no job table: the jobs are kept
  in this process's memory by procrastinate's in-memory connector and run
  by the same worker code in this process. A restart loses the jobs queued
  then; each job's work is kept in the service's own tables (a summary not
  written yet is written by the whisper's deadline fallback, the reconciler
  runs again at the next start), so the loss is a delay, never a promise
  broken. The start-up log says so (`jobs_in_memory`).

The loop runs in one daemon thread; the worker, when this process runs one,
runs on it, and a job's own (synchronous) code runs in the loop's executor
threads. Deferring from any thread hands the call to the loop and waits for
it, so the connector is only ever used from its loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from app.logs import get_logger

log = get_logger("switchboard.jobs")

# How long a deferral waits for the loop (a PostgreSQL insert) before it is given up.
DEFER_TIMEOUT_SECONDS = 10.0
# The queue every job of the service is on.
QUEUE = "switchboard"
# How often an idle worker looks for jobs besides PostgreSQL's notifications (procrastinate's default is 5 s).
# A worker starts listening while it makes its first look, so a job queued in between is seen only at the
# next look: a summary queued by the first transfer after a worker started would wait that long, past the
# whisper's deadline.
POLL_SECONDS = 1.0


class _App(procrastinate.App):
    """procrastinate's App without its built-in task.

    procrastinate 3.10's App adds the module-wide built-in blueprint under the
    namespace "builtin" each time one is made, renaming its one task again
    ("builtin:builtin:…"); the service makes an App per Flask app (the test
    suite, hundreds), and deletes old jobs with a task of its own
    (`forget_old_jobs`).
    """

    def _register_builtin_tasks(self) -> None:
        return None


def procrastinate_connector(database_url: str):
    """The connector for DATABASE_URL: PostgreSQL's own tables, or (SQLite) this process's memory."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=4)
    from procrastinate.testing import InMemoryConnector

    return InMemoryConnector()


class JobRuntime:
    """One app's jobs: deferring them, and (when this process works) the worker that runs them.

    REGISTER adds the service's tasks to the procrastinate app and returns
    them by name; CONTEXT is handed to every job (its sessions, settings
    and gateways). Nothing starts until the first deferral or `start`.
    """

    def __init__(self, database_url: str, register: Callable[[procrastinate.App], dict[str, Any]],
                 context: dict[str, Any], *, concurrency: int = 2, heartbeat_seconds: float = 10.0,
                 stalled_after_seconds: float = 30.0, work_here: bool = True) -> None:
        self.in_memory = not make_url(database_url).get_backend_name() == "postgresql"
        self.app = _App(connector=procrastinate_connector(database_url))
        self.tasks = register(self.app)
        self.context = {**context, "runtime": self}
        self.concurrency = concurrency
        self.heartbeat_seconds = heartbeat_seconds
        self.stalled_after_seconds = stalled_after_seconds
        # In memory, nobody else can see the jobs: this process must run them.
        self.work_here = work_here or self.in_memory
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None  # made on the loop
        self._opened = False
        self._thread: threading.Thread | None = None
        self._worker: asyncio.Task | None = None
        self._timers: list[tuple[str, str]] = []
        self._timed = False  # whether the running worker runs the timers

    # -- deferring ---------------------------------------------------------------------------------------------

    def defer(self, task: str, *, lock: str | None = None, run_lock: str | None = None,
              **arguments: Any) -> int | None:
        """Queue TASK with ARGUMENTS; the job's id, or None when a job with the same LOCK is queued already.

        LOCK is procrastinate's queueing lock: at most one job holding it waits
        in the queue at a time (two steps asking for one summary queue one job).
        RUN_LOCK is procrastinate's lock: jobs holding it run one after the
        other, in the order they were queued, never two at once.
        Waits at most DEFER_TIMEOUT_SECONDS for the queue (TimeoutError).
        """
        return self._submit(self._defer(task, lock, None, arguments, run_lock)).result(DEFER_TIMEOUT_SECONDS)

    def defer_soon(self, task: str, *, lock: str | None = None, schedule_in: dict | None = None,
                   **arguments: Any) -> None:
        """Queue TASK without waiting for the queue to answer (a webhook that must answer Twilio now); a
        failure is logged (`job_not_queued`)."""

        async def queue() -> None:
            try:
                await self._defer(task, lock, schedule_in, arguments)
            except Exception as error:  # noqa: BLE001 - nobody waits for this answer: it is logged
                log.warning("job_not_queued", task=task, error=type(error).__name__)

        self._submit(queue())

    async def _defer(self, task: str, lock: str | None, schedule_in: dict | None,
                     arguments: dict[str, Any], run_lock: str | None = None) -> int | None:
        await self._ready()
        configured = self.tasks[task].configure(queueing_lock=lock, lock=run_lock, schedule_in=schedule_in)
        try:
            job_id = await configured.defer_async(**arguments)
        except AlreadyEnqueued:
            log.info("job_already_queued", task=task, lock=lock)
            return None
        log.info("job_queued", task=task, job_id=job_id, **arguments)
        return job_id

    def call(self, coroutine) -> Any:
        """Run COROUTINE (a job manager's query) once the queue is open, and return its result."""

        async def when_ready() -> Any:
            await self._ready()
            return await coroutine

        return self._submit(when_ready()).result(DEFER_TIMEOUT_SECONDS)

    # -- working -----------------------------------------------------------------------------------------------

    def every(self, task: str, cron: str) -> None:
        """Run TASK on the cron schedule CRON (a sixth column counts seconds) from the next `start` on."""
        self._timers.append((task, cron))

    def start(self, wait_seconds: float | None = None) -> None:
        """Open the queue and, when this process works, start the worker with the timers set by `every`.

        A worker started earlier by a deferral (without timers) is started
        again with them. Waits at most WAIT_SECONDS (None: does not wait; a
        failure, the database down say, is logged and the next deferral
        tries again)."""

        async def start() -> None:
            await self._ready()
            await self._restart_worker()

        async def logged() -> None:
            try:
                await start()
            except Exception as error:  # noqa: BLE001 - nobody waits for this answer: it is logged
                log.warning("job_worker_not_started", error=type(error).__name__)

        if wait_seconds is None:
            self._submit(logged())
        else:
            self._submit(start()).result(wait_seconds)

    def _submit(self, coroutine) -> Future:
        """Run COROUTINE on the runtime's loop (started on first use)."""
        with self._lock:
            if self._loop is None:
                # The one thread the job engine needs: procrastinate's worker and connector are asyncio, the
                # service is synchronous. It runs no step of its own; jobs run as steps (jobs.steps.job_step)
                # and close_app stops it.
                ready = threading.Event()
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._run_loop, args=(self._loop, ready), name="jobs",
                                                daemon=True)
                self._thread.start()
                ready.wait()
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _ready(self) -> None:
        """Open the connector (once; again after a failure) and start the worker when this process works."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._opened:
                return
            await self.app.open_async()
            self._opened = True
            if self.in_memory:
                log.warning("jobs_in_memory", reason="the embedded SQLite database has no job table",
                            consequence="jobs queued when the process stops are lost; their work is redone from "
                                        "the service's tables (summary deadline fallback, the reconciler's next "
                                        "pass)")
            await self._start_worker()

    async def _restart_worker(self) -> None:
        if self._worker is not None and self._timers and not self._timed:
            await self._stop_worker(DEFER_TIMEOUT_SECONDS)
        if self._worker is None:
            await self._start_worker()

    async def _start_worker(self) -> None:
        if not self.work_here:
            return
        for task, cron in self._timers:
            if (task, task) not in self.app.periodic_registry.periodic_tasks:
                self.app.periodic(cron=cron, periodic_id=task)(self.tasks[task])
        self._timed = bool(self._timers)
        self._worker = asyncio.get_running_loop().create_task(self.app.run_worker_async(
            queues=[QUEUE],
            concurrency=self.concurrency,
            install_signal_handlers=False,
            additional_context=self.context,
            update_heartbeat_interval=self.heartbeat_seconds,
            stalled_worker_timeout=self.stalled_after_seconds,
            fetch_job_polling_interval=POLL_SECONDS,
            shutdown_graceful_timeout=None,
        ))
        log.info("job_worker_started", concurrency=self.concurrency, timers=[t for t, _ in self._timers])

    def work_until(self, stop_asked: Callable[[], bool], graceful_seconds: float = 60.0) -> None:
        """Work in the foreground (`flask jobs work`) until STOP_ASKED() is true or the worker ends, then stop,
        letting the jobs under way finish for at most GRACEFUL_SECONDS."""
        try:
            self.start(wait_seconds=60.0)
            while not stop_asked() and self._worker is not None and not self._worker.done():
                time.sleep(0.2)
        finally:
            self.stop(graceful_seconds)

    def wait_idle(self, seconds: float) -> bool:
        """Wait at most SECONDS for the queue to hold no job due now or running; True when it holds none."""
        if self._loop is None:
            return True
        return self._submit(self._until_idle(seconds)).result(seconds + DEFER_TIMEOUT_SECONDS)

    async def _until_idle(self, seconds: float) -> bool:
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            await asyncio.wait_for(self._ready(), seconds)
        except Exception:  # noqa: BLE001 - a queue that cannot be opened is not idle
            return False
        while True:
            jobs = await self.app.job_manager.list_jobs_async(queue=QUEUE)
            busy = [job for job in jobs if job.status in ("todo", "doing")
                    and (job.scheduled_at is None or job.scheduled_at <= procrastinate.utils.utcnow())]
            if not busy:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)

    def stop(self, wait_seconds: float) -> bool:
        """Stop the worker (letting the jobs under way finish, at most WAIT_SECONDS) and close the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = None
        if loop is None or thread is None:
            return True
        try:
            asyncio.run_coroutine_threadsafe(self._close(wait_seconds), loop).result(wait_seconds + 5)
        except Exception:  # noqa: BLE001 - the loop is stopped below whatever happened
            log.exception("job_worker_stop_failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()
        return not thread.is_alive()

    async def _close(self, wait_seconds: float) -> None:
        await self._stop_worker(wait_seconds)
        try:
            # Also when the opening never finished: its pool goes on trying to connect until closed.
            await self.app.close_async()
        except Exception as error:  # noqa: BLE001 - stopping goes on whatever the pool says
            log.warning("job_queue_close_failed", error=type(error).__name__)
        self._opened, self._opening = False, None
        # Whatever else is under way (a deferral still opening the queue while the database is down) ends here.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()

    async def _stop_worker(self, wait_seconds: float) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), wait_seconds)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            except Exception:  # noqa: BLE001 - a worker that crashed is stopped all the same
                log.exception("job_worker_crashed")
            self._worker = None


def cron_every(seconds: int) -> str:
    """A cron schedule (seconds in a sixth column) that fires every SECONDS, rounded to one cron can say."""
    if seconds < 60:
        step = max(1, seconds)
        return f"* * * * * */{step}"
    minutes = max(1, round(seconds / 60))
    return f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *"
