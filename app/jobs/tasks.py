"""The service's jobs, as procrastinate tasks: what each does and how it is retried.

Each job reads what it acts on from the service's tables and changes it in
steps that lock the call (app/jobs/steps.py), so a job that runs again (a
retry, a stalled job retried) changes nothing twice: a summary already
stored is not written again, a reconciled leg is not fixed again.
"""

from __future__ import annotations

from typing import Any

import procrastinate
from procrastinate import JobContext, RetryStrategy

from app.calls.callbacks import offer_due_callbacks
from app.calls.room_events import expire_browser_joins
from app.jobs.engine import QUEUE
from app.jobs.reconciler import Reconciler
from app.jobs.steps import JobTools, job_step
from app.logs import get_logger
from app.outgoing.sending import Sender, due_lines, send_line
from app.primitives.availability import end_due_wrap_ups
from app.transfers.summary import generate_summary

log = get_logger("switchboard.jobs")

# A summary whose database write failed is tried again after 2, 4 s (the LLM's
# own failures are not retried: they become the named fallback at once).
SUMMARY_RETRY = RetryStrategy(max_attempts=3, exponential_wait=2)
# How long finished jobs stay in the queue's tables for `flask jobs list` and inspection.
KEEP_FINISHED_JOBS_HOURS = 72


def _tools(context: JobContext) -> JobTools:
    return context.additional_context["tools"]


def sender_of(tools: JobTools) -> Sender:
    """What sends the outgoing events: the job's sessions, the key their secrets are sealed under, the timeout."""
    return Sender(tools.make_session, tools.settings.secret_key, tools.settings.event_webhook_timeout_seconds)


def register(app: procrastinate.App) -> dict[str, Any]:
    """Add the service's tasks to APP; returns them by name."""

    @app.task(name="summarise", queue=QUEUE, pass_context=True, retry=SUMMARY_RETRY)
    def summarise(context: JobContext, transfer_id: int) -> None:
        """Write a transfer's summary (nothing if one is stored already)."""
        tools = _tools(context)
        log.info("summary_job_started", transfer_id=transfer_id, job_id=context.job.id)
        generate_summary(tools.make_session, tools.outside.llm, transfer_id)

    @app.task(name="reconcile", queue=QUEUE, pass_context=True, queueing_lock="reconcile")
    def reconcile(context: JobContext, timestamp: int | None = None) -> None:
        """One reconciler pass (app/calls/reconcile.py); on a timer, or soon after a webhook met a database outage."""
        Reconciler(_tools(context)).run_once()

    @app.task(name="retry_stalled", queue=QUEUE, pass_context=True, queueing_lock="retry_stalled")
    async def retry_stalled(context: JobContext, timestamp: int | None = None) -> None:
        """Jobs whose worker stopped beating its heart (killed, its host gone) are queued again."""
        runtime = context.additional_context["runtime"]
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=runtime.stalled_after_seconds):
            log.warning("job_stalled_retried", task=job.task_name, job_id=job.id)
            await manager.retry_job(job)

    @app.task(name="end_wrap_ups", queue=QUEUE, pass_context=True, queueing_lock="end_wrap_ups")
    def end_wrap_ups(context: JobContext, timestamp: int | None = None) -> None:
        """Agents whose after-call work is over go idle and are offered what waits (WRAP_UP_SECONDS)."""
        with job_step(_tools(context)) as t:
            end_due_wrap_ups(t)

    @app.task(name="offer_callbacks", queue=QUEUE, pass_context=True, queueing_lock="offer_callbacks")
    def offer_callbacks(context: JobContext, timestamp: int | None = None) -> None:
        """Callbacks whose next attempt fell due are offered to free agents (CALLBACK_RETRY_SECONDS)."""
        with job_step(_tools(context)) as t:
            offer_due_callbacks(t)

    @app.task(name="check_browser_joins", queue=QUEUE, pass_context=True, queueing_lock="check_browser_joins")
    def check_browser_joins(context: JobContext, timestamp: int | None = None) -> None:
        """Browser agents who took a call and never joined its room in BROWSER_JOIN_SECONDS: the call goes on."""
        with job_step(_tools(context)) as t:
            expire_browser_joins(t)

    @app.task(name="deliver_events", queue=QUEUE, pass_context=True)
    def deliver_events(context: JobContext, subscriber_id: int, call_id: int | None = None) -> None:
        """Send one subscriber's due events of one call, in order (app/outgoing/sending.py); queued with the
        line's lock, so two jobs of one line never run at once."""
        send_line(sender_of(_tools(context)), subscriber_id, call_id)

    @app.task(name="deliver_due_events", queue=QUEUE, pass_context=True, queueing_lock="deliver_due_events")
    def deliver_due_events(context: JobContext, timestamp: int | None = None) -> None:
        """Queue the delivering job of each line whose next attempt fell due (a retry, a job never queued)."""
        tools = _tools(context)
        with tools.make_session() as session:
            lines = due_lines(session)
        for subscriber_id, call_id in lines:
            tools.deliver_later(subscriber_id, call_id)

    @app.task(name="forget_old_jobs", queue=QUEUE, pass_context=True, queueing_lock="forget_old_jobs")
    async def forget_old_jobs(context: JobContext, timestamp: int | None = None) -> None:
        """Finished jobs (and their events) older than KEEP_FINISHED_JOBS_HOURS are deleted; failed ones too."""
        await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_FINISHED_JOBS_HOURS, include_failed=True)

    return {"summarise": summarise, "reconcile": reconcile, "retry_stalled": retry_stalled,
            "end_wrap_ups": end_wrap_ups, "offer_callbacks": offer_callbacks, "check_browser_joins": check_browser_joins,
            "forget_old_jobs": forget_old_jobs, "deliver_events": deliver_events,
            "deliver_due_events": deliver_due_events}
