"""Running the reconciler: once by command (`flask calls reconcile`), and as the `reconcile` job, every
RECONCILE_INTERVAL_SECONDS and soon after a webhook met a database outage (app/jobs/tasks.py).

The job runs once per tick across all instances; the command may run beside
it, so on PostgreSQL a session-level advisory lock lets one pass run at a
time and the other skips its turn. On SQLite the database's write lock
already makes each step take its turn, and every fix re-reads its leg under
the call's lock, so a second pass changes nothing.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.calls.card_pause import resume_due_pauses
from app.calls.reconcile import Reconciliation, reconcile
from app.jobs.steps import JobTools, job_step
from app.logs import get_logger

log = get_logger("switchboard.reconcile")

# pg_try_advisory_lock's key for the reconciler ("SWBDRECN" as a number).
ADVISORY_KEY = 0x535742445245434E & 0x7FFFFFFFFFFFFFFF


class Reconciler:
    """One reconciler pass at a time across all workers (`run_once`); the `reconcile` job runs it on a timer."""

    def __init__(self, tools: JobTools) -> None:
        self.tools = tools

    def run_once(self) -> Reconciliation | None:
        """One pass (empty if another worker's pass is running); None if the database could not be reached."""
        if self.tools.outside.twilio is None:
            log.info("reconcile_skipped", reason="Twilio is not configured")
            return Reconciliation()
        engine = self.tools.make_session.kw["bind"]
        try:
            with engine.connect() as guard:
                if not _take_turn(guard):
                    log.info("reconcile_skipped", reason="another worker is reconciling")
                    return Reconciliation()
                try:
                    with self.tools.make_session() as session:
                        outcome = reconcile(lambda: job_step(self.tools), self.tools.outside.twilio, session,
                                            self.tools.settings.reconcile_pass_seconds)
                    resume_paused_transcriptions(self.tools)
                    return outcome
                finally:
                    _end_turn(guard)
        except SQLAlchemyError as error:
            log.warning("reconcile_database_unreachable", error=type(error).__name__)
            return None


def resume_paused_transcriptions(tools: JobTools) -> list[int]:
    """The pass after each reconcile: callers' transcriptions paused for a card number and now due start again.

    The reconciler's timer is the one that is always there: a paused
    transcription sends no callbacks of its own, so the next transcription
    callback of the call (calls/card_pause.screen) may never come.
    """
    with tools.make_session() as session:
        return resume_due_pauses(lambda: job_step(tools), session)


def _take_turn(guard) -> bool:
    if guard.dialect.name != "postgresql":
        return True
    taken = bool(guard.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}))
    # Not a step's commit: this connection only holds the session-level advisory lock, and ends its
    # transaction so no snapshot stays open for the length of the pass.
    guard.commit()
    return taken


def _end_turn(guard) -> None:
    if guard.dialect.name == "postgresql":
        guard.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
        guard.commit()
