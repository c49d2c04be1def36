"""Running the reconciler: once by command, at each worker's start, every RECONCILE_INTERVAL_SECONDS, and
again soon after the database comes back from an outage.

Several workers (and hosts) may each run it; on PostgreSQL a session-level
advisory lock lets one pass run at a time and the others skip theirs. On
SQLite the database's write lock already makes each step take its turn,
and every fix re-reads its leg under the call's lock, so a second pass
changes nothing.
"""

from __future__ import annotations

import threading

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.calls.card_pause import resume_due_pauses
from app.calls.reconcile import Reconciliation, reconcile
from app.jobs.steps import JobTools, job_step
from app.logs import get_logger

log = get_logger("switchboard.reconcile")

# pg_try_advisory_lock's key for the reconciler ("SWBDRECN" as a number).
ADVISORY_KEY = 0x535742445245434E & 0x7FFFFFFFFFFFFFFF
# After a pass met a database outage, the next try comes this much sooner.
RETRY_AFTER_OUTAGE_SECONDS = 5.0


class Reconciler:
    """One process's reconciler: `run_once` for a pass, `start` for the background thread."""

    def __init__(self, tools: JobTools, interval_seconds: float) -> None:
        self.tools = tools
        self.interval = interval_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
                        outcome = reconcile(lambda: job_step(self.tools), self.tools.outside.twilio.call_status,
                                            session)
                    resume_paused_transcriptions(self.tools)
                    return outcome
                finally:
                    _end_turn(guard)
        except SQLAlchemyError as error:
            log.warning("reconcile_database_unreachable", error=type(error).__name__)
            return None

    def soon(self) -> None:
        """Run the next pass now (a webhook met the database failing: the pass after it catches up)."""
        self._wake.set()

    def start(self) -> None:
        """Run a pass now (start-up), then every interval, in a daemon thread."""
        if self.interval <= 0 or self._thread is not None or self.tools.outside.twilio is None:
            return
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self, wait_seconds: float = 0.0) -> bool:
        """Stop the background thread (waiting at most WAIT_SECONDS for its pass); True when it has stopped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait_seconds)
            return not self._thread.is_alive()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Cleared before the pass: a wake-up during it asks for one more.
            self._wake.clear()
            try:
                outcome = self.run_once()
            except Exception:  # noqa: BLE001 - the thread must live on; the next pass tries again
                log.exception("reconcile_crashed")
                outcome = None
            wait = self.interval if outcome is not None else min(self.interval, RETRY_AFTER_OUTAGE_SECONDS)
            self._wake.wait(wait)


def resume_paused_transcriptions(tools: JobTools) -> list[int]:
    """The pass after each reconcile: callers' transcriptions paused for a card number and now due start again.

    The reconciler's timer is the one that is always there: a paused
    transcription sends no callbacks of its own, so the next transcription
    callback of the call (calls/card_pause.screen) may never come.
    """
    with tools.make_session() as session:
        return resume_due_pauses(lambda: job_step(tools), session)


def reconciler_of(app) -> Reconciler:
    """The app's reconciler (made on first use), from its sessions, settings and gateways."""
    if "reconciler" not in app.extensions:
        settings = app.config["SETTINGS"]
        make_session, outside = app.extensions["db_sessionmaker"], app.extensions["gateways"]
        tools = JobTools(make_session, settings, outside, app.extensions["summaries"].start)
        app.extensions["reconciler"] = Reconciler(tools, settings.reconcile_interval_seconds)
    return app.extensions["reconciler"]


def _take_turn(guard) -> bool:
    if guard.dialect.name != "postgresql":
        return True
    taken = bool(guard.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}))
    guard.commit()
    return taken


def _end_turn(guard) -> None:
    if guard.dialect.name == "postgresql":
        guard.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
        guard.commit()
