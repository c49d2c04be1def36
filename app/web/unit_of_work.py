"""One request's unit of work, built once in one place: its database session, the telephony tools of its step,
what follows its commit, and what it answers if the database fails.

Every request that reads or writes the database goes through it: a Twilio
webhook (app/voice/guard.py), a page, the JSON API. The session is
committed once, after the view, and rolled back on error; once committed,
what the step recorded for Twilio and LiveKit is carried out and the calls
and agents it freed are offered (telephony.steps.follow_up). A page's or an
API request's step on calls runs in `run_step`, which runs it once more when
PostgreSQL aborts it as a deadlock's victim (the webhook guard does the same
for webhooks).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import commits, worth_running_again
from app.jobs.steps import follow_up
from app.logs import get_logger
from app.primitives.context import Budget, Telephony
from app.telephony.urls import WebhookUrls

log = get_logger("switchboard.web")
T = TypeVar("T")


class UnitOfWork:
    """The database work of one request."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.session: Session = app.extensions["db_sessionmaker"]()
        # What a Twilio webhook answers when the database fails (TwiML that
        # keeps the caller on the line); pages and the API answer a 503.
        self.answer_when_database_fails: Callable[[], Response] | None = None
        self._telephony: Telephony | None = None
        self._after_answer = False  # what follows the commit runs once the answer has been sent
        self.budget: Budget | None = None  # a webhook's time budget (start_budget)
        self._open_after_answer = False  # the session stays open for it past the request's teardown

    @property
    def telephony(self) -> Telephony:
        """The tools of this request's step on calls (made on first use)."""
        if self._telephony is None:
            settings = self.app.config["SETTINGS"]
            outside = self.app.extensions["gateways"]
            self._telephony = Telephony(
                session=self.session,
                settings=settings,
                urls=WebhookUrls(settings.public_base_url),
                twilio_gateway=outside.twilio,
                livekit_gateway=outside.livekit,
                summarise_later=self.app.extensions["jobs"].context["tools"].summarise_later,
                budget=self.budget,
            )
        return self._telephony

    def start_budget(self) -> None:
        """A webhook: from now on its calls to Twilio and LiveKit share WEBHOOK_BUDGET_SECONDS, and what is
        left when it is spent is carried out after the answer."""
        self.budget = Budget.starting_now(self.app.config["SETTINGS"].webhook_budget_seconds)

    def follow_up_after_answer(self) -> None:
        """Carry out what follows this step's commit once its answer has been sent, not before.

        For a hold turn: the REST calls its step recorded (ringing the next
        agent, a redirect) must not hold back the TwiML that keeps the music
        playing. The commit still comes before the answer, so what the
        answer says is stored; the outbox keeps the effects if the worker
        dies in between (the reconciler carries out what is left).
        """
        self._after_answer = True

    def forget_step(self) -> None:
        """The step was rolled back whole: what it freed, requeued and recorded goes with it."""
        self._telephony = None

    def run_step(self, work: Callable[[Telephony], T]) -> T:
        """WORK, a page's or an API request's step on calls, run once more afresh if PostgreSQL aborted it.

        A transaction chosen as a deadlock's victim, or failed for a
        serialization conflict, before any of it was committed, is rolled back
        (its recorded effects with it) and run again (`transaction_retried`, a
        warning). What WORK wrote is flushed inside it, so such a conflict
        shows here and not at the request's commit.
        """
        before = commits(self.session)
        try:
            result = work(self.telephony)
            self.session.flush()
            return result
        except SQLAlchemyError as error:
            conflict = worth_running_again(error)
            if conflict is None or commits(self.session) != before:
                raise
            self.session.rollback()
            self.forget_step()
            log.warning("transaction_retried", conflict=conflict, error=str(error).splitlines()[0][:200])
        result = work(self.telephony)
        self.session.flush()
        return result

    def finish(self, response: Response) -> Response:
        """Commit the request's work (not for a 5xx), then carry out what follows the commit."""
        if response.status_code >= 500:
            return response
        try:
            self._commit()
        except SQLAlchemyError:
            log.error("request_commit_failed", path=request.path)
            self._roll_back()
            self.forget_step()
            answer = self.answer_when_database_fails
            return answer() if answer else Response("the database is unavailable\n", status=503,
                                                    mimetype="text/plain")
        if self._telephony is not None and (self._after_answer or not self._follow_up()):
            # What follows the commit, or what its budget left of it, runs once the answer has gone: the
            # WSGI server closes the response once it has sent it (PEP 3333).
            self._open_after_answer = True
            response.call_on_close(self._follow_up_once_answered)
        return response

    def _follow_up(self) -> bool:
        """The step is committed: Twilio and LiveKit follow it, then the calls it put back in the queue and the
        agents it freed are offered now. False when the webhook's budget ran out first (the rest is due)."""
        try:
            finished = follow_up(self._telephony)
            # The edge's second commit, after the step's own: what the follow-up recorded (CallSids, refused
            # dials, the offers it made, each under its call's lock) is stored before the answer or, for a hold
            # turn or a spent budget, as soon as the follow-up ends after it.
            self._commit()
            return finished
        except Exception:  # noqa: BLE001 - logged; the answer stands, and the outbox keeps what is left
            self._roll_back()
            log.exception("after_commit_failed")
            return True

    def _follow_up_once_answered(self) -> None:
        try:
            self._telephony.budget = None  # the answer has gone: the gateways' own timeouts hold again
            with self.app.app_context():
                self._follow_up()
        finally:
            self._open_after_answer = False
            self.close()

    def close(self) -> None:
        """Roll back what was not committed and give the connection back (unless its follow-up is still due)."""
        if self._open_after_answer:
            return
        self._roll_back()
        self.session.close()

    def _commit(self) -> None:
        # The request edge's own commit (tests/test_architecture.py names this place): once after the view, once
        # after what follows it. A session with no transaction has nothing to store (a webhook's guard has
        # committed its step already): its commit would only run the session's machinery on an empty transaction.
        if self.session.in_transaction():
            self.session.commit()

    def _roll_back(self) -> None:
        try:
            self.session.rollback()
        except SQLAlchemyError:
            pass


def current_work() -> UnitOfWork:
    """The unit of work of the current request (made on first use)."""
    if "unit_of_work" not in g:
        g.unit_of_work = UnitOfWork(current_app._get_current_object())
    return g.unit_of_work


def request_session() -> Session:
    """The database session of the current request."""
    return current_work().session


def telephony() -> Telephony:
    """The telephony tools of the current request's step."""
    return current_work().telephony


def run_step(work: Callable[[Telephony], T]) -> T:
    """Run a page's or an API request's step on calls in the current request's unit of work."""
    return current_work().run_step(work)


def init_unit_of_work(app: Flask) -> None:
    """Commit each request's work after its view, and close it at the end."""
    app.after_request(_finish)
    app.teardown_appcontext(_close)


def _finish(response: Response) -> Response:
    # Committed before the response leaves, so a failed commit becomes the
    # failure answer rather than a success that was never stored.
    work = g.get("unit_of_work")
    return work.finish(response) if work is not None else response


def _close(_error: BaseException | None) -> None:
    work = g.pop("unit_of_work", None)
    if work is not None:
        work.close()
