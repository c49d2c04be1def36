"""The reconciler: Twilio's word on every call and leg the database thinks is live, and the fixes it calls for.

Twilio does not retry a status callback, so one that meets a database
outage (answered 503) or a crash is lost: the call stays `connected`, its
agent `on_call`. The reconciler learns Twilio's status of each Twilio leg
the database holds as live, and of the last leg of each agent kept LEAVING,
and feeds a final status through the same reaction its status callback
would have run. So a lost callback is caught up exactly as the callback
would have done it, nothing more.

Twilio is asked in two ways. First the account's live calls, listed (GET
Calls.json?Status=queued, then ringing, then in-progress, page after page:
ceil(live calls / page size) requests a status); every leg on that list is
live, as the database says, and costs nothing more. A leg that is not on it
has ended (or Twilio no longer knows it): only that leg is asked about on its
own (GET Calls/{sid}), for its final status. So a pass over a few hundred
live calls costs a few list requests, plus one request per leg that really
ended unheard.

Why a leg missing from the list may be taken as ended, and asked about:
- The database's legs are read before the list is requested. A leg with a
  Twilio sid in that read was placed at Twilio before the list began; a call
  placed later (a caller dialling in while the list is read) is on no list,
  but its leg is not in the read either, so it is never asked about. A leg
  whose dial Twilio has not confirmed (no sid yet) is never asked.
- The statuses are listed in the order a call passes through them (queued,
  ringing, in-progress), so a call that moves on during the listing lands on
  a later list: a call live from the first request to the last is on one.
- Its own request is Twilio's word, not a guess: a leg the list missed all
  the same (Twilio's list lagging behind) answers live and is left alone.

Each fix runs one call at a time: Twilio is asked with no transaction open,
then the call is locked and its leg read afresh, so a callback that arrived
meanwhile wins and the reconciler changes nothing. An agent left busy with
no live leg at all (a state no callback can fix) is freed, with an event.

A pass is bounded in time (RECONCILE_PASS_SECONDS, less than the interval):
once it is up, the pass stops asking and fixing, logs
`reconcile_pass_cut_short` with the legs left, and frees stranded agents as
usual. The legs asked one by one are taken in leg id order, and each that
Twilio answers is fixed and leaves the database's live legs, so the next
pass starts with the ones this pass did not reach (and any Twilio did not
answer for); no position needs to be kept between passes.

Before asking Twilio, a pass carries out what a dead worker left in the
outbox (effects committed but never carried out: `carry_out_leftovers`),
and gives up rings nobody will report on (a browser ring past its timeout,
a dial Twilio never confirmed: reactions.expire_rings) and transfer menus
nobody answered (transfers.give_up_unanswered_menus).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.calls.outbound import customer_status
from app.calls.reactions import (
    agent_leg_status,
    expire_rings,
    leg_confirmed_over,
    target_leg_status,
)
from app.calls.service import end_call
from app.events import record_event
from app.logs import get_logger
from app.models import (
    LIVE_LEG_STATUSES,
    Activity,
    Agent,
    Leg,
    LegRole,
    OutboxEffect,
    utcnow,
)
from app.primitives.availability import release_agent
from app.primitives.context import Telephony
from app.primitives.effects import effect_from_row, hang_up, repeatable
from app.primitives.legs import lock_call
from app.telephony.outcomes import CallProgress
from app.transfers.service import give_up_unanswered_menus

log = get_logger("switchboard.reconcile")

# Twilio no longer knows the call (404): it ended long enough ago to be gone,
# or never existed; either way nobody is on it.
UNKNOWN_TO_TWILIO = "unknown"


@dataclass(frozen=True)
class LiveLeg:
    """A Twilio leg to ask about: live in the database, or the last leg of an agent kept LEAVING."""

    call_id: int
    leg_id: int
    call_sid: str
    keeps_agent: bool = False  # ended here, its agent kept LEAVING until Twilio says it is over


class TwilioCalls(Protocol):
    """What the reconciler asks Twilio (app/gateways/twilio.py); both raise TwilioError when Twilio cannot answer."""

    def live_calls(self) -> dict[str, str]:
        """The account's live calls: sid -> status."""

    def call_status(self, sid: str) -> str | None:
        """One call's status; None when Twilio does not know it."""


@dataclass
class Reconciliation:
    """What one pass found: legs asked about, legs fixed, Twilio failures, agents freed, legs not reached."""

    asked: int = 0  # legs whose status Twilio gave, on its list or asked one by one
    asked_one_by_one: int = 0  # of them, legs asked about on their own (not on the list of live calls)
    not_reached: list[int] = field(default_factory=list)  # legs left when the pass ran out of time
    fixed: list[int] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    agents_freed: list[str] = field(default_factory=list)
    calls_recovered: set[int] = field(default_factory=set)  # calls whose left-over effects were carried out
    rings_given_up: int = 0
    menus_given_up: int = 0


# A request carries out its effects within seconds of its commit (Twilio
# gives it 15 s): outbox rows this old were left by a worker that died.
LEFTOVER_AFTER = timedelta(seconds=30)


def carry_out_leftovers(step: Callable[[], object], session: Session) -> set[int]:
    """Carry out, call by call under the call's lock, the effects a dead worker committed and never carried out.

    Each is on the call's timeline (`effect_recovered`) and its row is
    deleted once done, as a live request would. An effect that must not run
    twice (a dial) and was already tried may have gone out: it is dropped
    (`effect_abandoned_after_crash`); its leg, with no word from Twilio, is
    given up like any unconfirmed dial. Returns the ids of the calls whose
    effects were carried out.
    """
    cutoff = utcnow() - LEFTOVER_AFTER
    call_ids = session.scalars(
        select(OutboxEffect.call_id).where(OutboxEffect.created_at < cutoff, OutboxEffect.call_id.is_not(None))
        .group_by(OutboxEffect.call_id).order_by(func.min(OutboxEffect.id))
    ).all()
    session.rollback()
    recovered = set()
    for call_id in call_ids:
        with step() as t:
            call = lock_call(t, call_id)
            rows = t.session.scalars(
                select(OutboxEffect).where(OutboxEffect.call_id == call_id, OutboxEffect.created_at < cutoff)
                .order_by(OutboxEffect.id)
            ).all()
            for row in rows:
                effect = effect_from_row(row.effect)
                kind = type(effect).__name__
                if row.tried_at is not None and not repeatable(effect):
                    record_event(t.session, call, "effect_abandoned_after_crash", effect=kind,
                                 leg_id=getattr(effect, "leg_id", None))
                    t.session.delete(row)
                    continue
                record_event(t.session, call, "effect_recovered", effect=kind, leg_id=getattr(effect, "leg_id", None))
                t.effects.adopt(effect, row)
                recovered.add(call_id)
    return recovered


def legs_to_ask(session: Session) -> list[LiveLeg]:
    """Every Twilio leg the database holds as live, and the last leg of each agent kept LEAVING, by id."""
    live = select(Leg.call_id, Leg.id, Leg.twilio_call_sid).where(
        Leg.twilio_call_sid.is_not(None), Leg.status.in_(LIVE_LEG_STATUSES)
    )
    last_of_leaving = (
        select(func.max(Leg.id))
        .join(Agent, Agent.id == Leg.agent_id)
        .where(Agent.activity == Activity.LEAVING, Leg.twilio_call_sid.is_not(None))
        .group_by(Agent.id)
    )
    leaving = select(Leg.call_id, Leg.id, Leg.twilio_call_sid).where(Leg.id.in_(last_of_leaving))
    rows = {row.id: LiveLeg(row.call_id, row.id, row.twilio_call_sid) for row in session.execute(live)}
    rows.update({row.id: LiveLeg(row.call_id, row.id, row.twilio_call_sid, keeps_agent=True)
                 for row in session.execute(leaving)})
    return [rows[leg_id] for leg_id in sorted(rows)]


def apply_twilio_status(t: Telephony, live: LiveLeg, twilio_status: str) -> bool:
    """Bring one leg in line with Twilio's status (its call locked); True if anything changed."""
    call = lock_call(t, live.call_id)
    leg = t.session.get(Leg, live.leg_id) if call is not None else None
    if leg is None:
        return False
    progress = CallProgress.COMPLETED if twilio_status == UNKNOWN_TO_TWILIO else CallProgress.parse(twilio_status)
    agent = leg.agent
    if leg.is_final:
        if agent is None or agent.activity != Activity.LEAVING:
            return False
        if progress.is_final:
            leg_confirmed_over(t, leg)
            return agent.activity != Activity.LEAVING
        # Twilio still carries the leg the service ended: end it again.
        record_event(t.session, call, "leg_still_live_hung_up_again", leg_id=leg.id, twilio_status=twilio_status)
        hang_up(t, call, leg.twilio_call_sid, leg_id=leg.id)
        return True
    if not progress.is_final:
        return False
    record_event(t.session, call, "leg_reconciled", leg_id=leg.id, role=leg.role, was=leg.status,
                 twilio_status=twilio_status)
    log.warning("leg_reconciled", call_id=call.id, leg_id=leg.id, role=leg.role, was=leg.status,
                twilio_status=twilio_status)
    if leg.role == LegRole.CALLER and call.is_outbound:
        customer_status(t, leg, progress)
    elif leg.role == LegRole.CALLER:
        end_call(t, call, progress)
    elif leg.role == LegRole.TARGET:
        target_leg_status(t, leg, progress)
    else:
        agent_leg_status(t, leg, progress)
    return True


def free_stranded_agents(t: Telephony) -> list[str]:
    """Agents busy (ringing, on a call, leaving) with no live leg at all: freed, each with an event."""
    live_agent_ids = select(Leg.agent_id).where(Leg.agent_id.is_not(None), Leg.status.in_(LIVE_LEG_STATUSES))
    stranded = t.session.scalars(
        select(Agent)
        # After-call work is not being busy: its timer ends it (an agent in it has no live leg by design).
        .where(Agent.activity.in_((Activity.RINGING, Activity.ON_CALL, Activity.LEAVING)),
               Agent.id.not_in(live_agent_ids))
        .order_by(Agent.id)
        .with_for_update(skip_locked=True)  # an agent a step holds right now is that step's
    ).all()
    freed = []
    for agent in stranded:
        # Asked again now that the agent is locked: a step that rang them after the scan's statement began (which
        # saw the legs as they were then) has committed their new leg.
        last_leg = t.session.scalar(select(Leg).where(Leg.agent_id == agent.id).order_by(Leg.id.desc()).limit(1))
        if last_leg is not None and last_leg.status in LIVE_LEG_STATUSES:
            continue
        if agent.activity == Activity.LEAVING and last_leg is not None and last_leg.twilio_call_sid:
            continue  # Twilio's word on that leg frees them (apply_twilio_status)
        record_event(t.session, last_leg.call if last_leg else None, "agent_freed_by_reconciler",
                     agent=agent.extension, was=agent.activity)
        log.warning("agent_freed_by_reconciler", agent=agent.extension, was=agent.activity)
        release_agent(t, agent)
        freed.append(agent.extension)
    return freed


def reconcile(step: Callable[[], object], twilio: TwilioCalls, session: Session,
              pass_seconds: float) -> Reconciliation:
    """One pass: the legs of `legs_to_ask`, then Twilio's live calls, the others asked one by one; fixes; agents.

    STEP opens one committed step (a context manager giving a Telephony);
    TWILIO lists the live calls and answers one call's status; SESSION reads
    the legs. After PASS_SECONDS the pass stops asking (`reconcile_pass_cut_short`).
    """
    from app.gateways.twilio import TwilioError

    deadline = utcnow() + timedelta(seconds=pass_seconds)
    result = Reconciliation()
    result.calls_recovered = carry_out_leftovers(step, session)
    with step() as t:
        result.rings_given_up = expire_rings(t)
    with step() as t:
        result.menus_given_up = give_up_unanswered_menus(t)
    # A call whose effects were just carried out is in motion (a goodbye still
    # to play, a redirect on its way): Twilio is asked about it next pass.
    # The database's legs are read before Twilio's list is asked for (see above).
    legs = [live for live in legs_to_ask(session) if live.call_id not in result.calls_recovered]
    session.rollback()  # no transaction stays open while Twilio answers
    try:
        live_at_twilio = twilio.live_calls() if legs else {}
    except TwilioError as error:
        log.warning("reconcile_twilio_failed", listing="live calls", error=str(error)[:200])
        result.unanswered = [live.leg_id for live in legs]
        legs = []
    result.asked = sum(1 for live in legs if live.call_sid in live_at_twilio)
    to_settle = [live for live in legs if live.keeps_agent or live.call_sid not in live_at_twilio]
    for index, live in enumerate(to_settle):
        if utcnow() >= deadline:
            result.not_reached = [left.leg_id for left in to_settle[index:]]
            log.warning("reconcile_pass_cut_short", left=len(result.not_reached), pass_seconds=pass_seconds)
            break
        status = live_at_twilio.get(live.call_sid)
        if status is None:
            result.asked_one_by_one += 1
            try:
                status = twilio.call_status(live.call_sid) or UNKNOWN_TO_TWILIO
            except TwilioError as error:
                log.warning("reconcile_twilio_failed", leg_id=live.leg_id, error=str(error)[:200])
                result.unanswered.append(live.leg_id)
                continue
            result.asked += 1
        if live.keeps_agent or status == UNKNOWN_TO_TWILIO or CallProgress.parse(status).is_final:
            with step() as t:
                if apply_twilio_status(t, live, status):
                    result.fixed.append(live.leg_id)
    with step() as t:
        result.agents_freed = free_stranded_agents(t)
    log.info("reconcile_done", asked=result.asked, asked_one_by_one=result.asked_one_by_one,
             fixed=len(result.fixed), unanswered=len(result.unanswered), not_reached=len(result.not_reached),
             agents_freed=len(result.agents_freed), calls_recovered=len(result.calls_recovered),
             rings_given_up=result.rings_given_up, menus_given_up=result.menus_given_up)
    return result
