"""An app's jobs: made at start-up (`init_jobs`), started by gunicorn's workers and `flask jobs work`.

Deferring needs nothing started: the first deferral opens the connector (and,
when this process works jobs, starts its worker). The timers (the reconciler
every RECONCILE_INTERVAL_SECONDS, stalled jobs every JOB_STALLED_AFTER_SECONDS)
run only in a process started with `start_jobs`: gunicorn's workers when
JOBS_IN_PROCESS is true, and every `flask jobs work` process. Each tick is
deferred once across them all.
"""

from __future__ import annotations

from sqlalchemy import event

from app.db import savepoint_only
from app.jobs.engine import JobRuntime, cron_every
from app.jobs.reconciler import Reconciler
from app.jobs.steps import JobTools
from app.jobs.tasks import register
from app.logs import get_logger
from app.outgoing.outbox import lines_added

log = get_logger("switchboard.jobs")

# How often the timer ends the after-call work that is over (a queued caller's hold turn does it too).
WRAP_UP_CHECK_SECONDS = 5
# How often due callbacks are looked for (a retry falls due while every agent stays idle).
CALLBACK_CHECK_SECONDS = 5
# How often browser agents who took a call are checked for having joined its room (BROWSER_JOIN_SECONDS).
JOIN_CHECK_SECONDS = 5
# How often the lines of outgoing events whose next attempt fell due are looked for (a retry, a job never queued).
DELIVERY_CHECK_SECONDS = 5
# A webhook that met a database outage asks for a reconciler pass this much later.
RECONCILE_SOON_SECONDS = 5


def init_jobs(app) -> None:
    """Give the app its job runtime (app.extensions["jobs"]), which close_app stops."""
    settings = app.config["SETTINGS"]
    stalled = settings.job_stalled_after_seconds
    runtime = JobRuntime(settings.database_url, register, {}, concurrency=settings.job_concurrency,
                         heartbeat_seconds=stalled / 3, stalled_after_seconds=stalled,
                         work_here=settings.jobs_in_process)
    runtime.context["tools"] = JobTools(app.extensions["db_sessionmaker"], settings, app.extensions["gateways"],
                                        summarise_later=lambda transfer_id: summarise_later(runtime, transfer_id),
                                        deliver_later=lambda subscriber_id, call_id: deliver_later(
                                            runtime, subscriber_id, call_id))
    app.extensions["jobs"] = runtime
    # Whatever committed deliveries of outgoing events (a webhook's step, a page's, a job's, a command's), their
    # lines are sent at once; the `deliver_due_events` timer catches up on any whose job was not queued.
    event.listen(app.extensions["db_sessionmaker"], "after_commit",
                 lambda session: savepoint_only(session) or deliver_committed(runtime, session))
    event.listen(app.extensions["db_sessionmaker"], "after_rollback",
                 lambda session: savepoint_only(session) or lines_added(session))


def jobs_of(app) -> JobRuntime:
    """The app's job runtime."""
    return app.extensions["jobs"]


def summarise_later(runtime: JobRuntime, transfer_id: int) -> None:
    """Queue the job that writes a transfer's summary (one at a time per transfer)."""
    runtime.defer("summarise", lock=f"summary-{transfer_id}", transfer_id=transfer_id)


def deliver_later(runtime: JobRuntime, subscriber_id: int, call_id: int | None) -> None:
    """Queue the job that sends one subscriber's due events of one call (one waiting at a time per line; the
    line's lock runs them one after the other)."""
    line = f"events-{subscriber_id}-{call_id if call_id is not None else 'none'}"
    runtime.defer("deliver_events", lock=line, run_lock=line, subscriber_id=subscriber_id, call_id=call_id)


def deliver_committed(runtime: JobRuntime, session) -> None:
    """After a commit: queue the sending of each line the committed transaction added deliveries to. A queue that
    cannot be reached is logged (`job_not_queued`); the timer sends them within DELIVERY_CHECK_SECONDS of its
    coming back."""
    for subscriber_id, call_id in sorted(lines_added(session), key=lambda line: (line[0], line[1] or 0)):
        try:
            deliver_later(runtime, subscriber_id, call_id)
        except Exception as error:  # noqa: BLE001 - the step is committed; the timer sends what this did not queue
            log.warning("job_not_queued", task="deliver_events", error=type(error).__name__)


def start_jobs(app) -> None:
    """Start this process's worker with the service's timers (gunicorn's workers, `flask jobs work`)."""
    runtime = jobs_of(app)
    interval = app.config["SETTINGS"].reconcile_interval_seconds
    if interval > 0:
        runtime.every("reconcile", cron_every(interval))
    runtime.every("retry_stalled", cron_every(app.config["SETTINGS"].job_stalled_after_seconds))
    runtime.every("forget_old_jobs", "17 * * * *")  # hourly
    if app.config["SETTINGS"].wrap_up_seconds > 0:
        runtime.every("end_wrap_ups", cron_every(WRAP_UP_CHECK_SECONDS))
    runtime.every("offer_callbacks", cron_every(CALLBACK_CHECK_SECONDS))
    runtime.every("check_browser_joins", cron_every(JOIN_CHECK_SECONDS))
    runtime.every("deliver_due_events", cron_every(DELIVERY_CHECK_SECONDS))
    runtime.start()
    if interval > 0:
        # A pass at start-up too (once, whichever instance starts first): what happened while none ran.
        runtime.defer_soon("reconcile", lock="reconcile")


def reconcile_soon(app) -> None:
    """A webhook met the database failing: queue a reconciler pass a few seconds on, without waiting for it.

    On PostgreSQL the queue is in the database that just failed, so this may
    not be stored either (logged as `job_not_queued`); the reconciler's
    timer then catches up within RECONCILE_INTERVAL_SECONDS.
    """
    jobs_of(app).defer_soon("reconcile", lock="reconcile", schedule_in={"seconds": RECONCILE_SOON_SECONDS})


def reconciler_of(app) -> Reconciler:
    """A reconciler with the app's sessions, settings and gateways (`flask calls reconcile`, tests)."""
    return Reconciler(jobs_of(app).context["tools"])
