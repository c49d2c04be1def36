"""The transfer summary: started in the background when a transfer starts, looked at by each turn of the whisper.

The first summary stored wins (a conditional UPDATE), so a late LLM answer
never replaces the fallback the target already heard, and any worker on any
host can wait for it through the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.events import record_event
from app.kinds import SummarySource
from app.logs import get_logger
from app.models import Call, Transfer, Utterance, same_customer, utcnow
from app.summaries.compose import Summary, SummaryInput, fallback_summary, summarize

log = get_logger("switchboard.summaries")


def summary_input(session: Session, transfer: Transfer) -> SummaryInput:
    """What the summary of this transfer is built from: the whole call so far."""
    call = transfer.call
    utterances = session.scalars(select(Utterance).where(Utterance.call_id == call.id).order_by(Utterance.id))
    earlier = session.scalars(
        select(Call)
        .where(same_customer(call.customer_number), Call.id != call.id, Call.created_at < call.created_at)
        .order_by(Call.created_at.desc())
        .limit(3)
    )
    # The summary covers the call itself: its transcript and every transfer's
    # notes, never an earlier summary's text (which would nest summaries of
    # summaries, and carry an earlier LLM answer forward as fact).
    notes = [t.notes for t in call.transfers if t.notes and t.id <= transfer.id]
    earlier_transfers = [t for t in call.transfers if t.id < transfer.id and t.summary_spoken]
    return SummaryInput(
        ivr_reason=call.ivr_reason,
        utterances=[(u.speaker, u.text) for u in utterances],
        notes="\n".join(notes) or None,
        earlier_calls=[
            f"{c.created_at:%Y-%m-%d}: {c.ivr_reason or 'no reason recorded'} ({c.status})" for c in earlier
        ],
        caller_number=call.from_number,
        chained=bool(earlier_transfers),
    )


# What a transfer keeps of its summary, each in the column summary_<name>.
SUMMARY_COLUMNS = ("spoken", "structured", "source", "provider", "model", "latency_ms", "error")


def summary_columns(summary: Summary) -> dict:
    """SUMMARY as the transfer keeps it: {name: value} of SUMMARY_COLUMNS (its error cut to the column)."""
    columns = {name: getattr(summary, name) for name in SUMMARY_COLUMNS}
    columns["error"] = (summary.error or None) and summary.error[:255]
    return columns


def stored_summary(transfer: Transfer) -> dict:
    """The summary a transfer keeps: {name: value} of SUMMARY_COLUMNS, all None until one is stored."""
    return {name: getattr(transfer, f"summary_{name}") for name in SUMMARY_COLUMNS}


def store_summary(session: Session, transfer_id: int, summary: Summary) -> bool:
    """Store SUMMARY unless one is already stored; True if this one was kept."""
    kept = session.execute(
        update(Transfer)
        .where(Transfer.id == transfer_id, Transfer.summary_source.is_(None))
        .values({f"summary_{name}": value for name, value in summary_columns(summary).items()})
        .execution_options(synchronize_session=False)
    ).rowcount
    transfer = session.get(Transfer, transfer_id, populate_existing=True)
    if transfer is None:  # the call's records were removed meanwhile
        return False
    name = "summary_ready" if summary.source == SummarySource.LLM else "summary_fallback_used"
    record_event(
        session,
        transfer.call,
        name if kept else "summary_discarded_late",
        transfer=transfer,
        source=summary.source,
        provider=summary.provider,
        model=summary.model,
        latency_ms=summary.latency_ms,
        error=summary.error,
    )
    if kept and summary.dropped:
        # Named in the timeline: what the LLM said that the call does not bear out, never spoken.
        record_event(session, transfer.call, "summary_sentences_dropped", transfer=transfer,
                     count=len(summary.dropped), sentences=[s[:300] for s in summary.dropped])
    return bool(kept)


def generate_summary(make_session: sessionmaker, llm_gateway, transfer_id: int) -> None:
    """Summarise the call of a transfer and store it (runs in the background, in two short transactions)."""
    with make_session.begin() as session:  # released before the LLM thinks
        transfer = session.get(Transfer, transfer_id)
        if transfer is None or transfer.summary_source is not None:
            return
        inp = summary_input(session, transfer)
    summary = summarize(inp, llm_gateway)
    with make_session.begin() as session:
        store_summary(session, transfer_id, summary)


def settle_summary(session: Session, transfer: Transfer, *, since: datetime | None,
                   deadline_seconds: float, at_once: str | None = None) -> bool:
    """Whether the summary can be spoken now: stored already, or DEADLINE_SECONDS past SINCE (then the fallback
    is stored, named as one). Never waits: the target's phone asks again on its next turn.

    AT_ONCE (why, in words): the fallback is stored now if nothing is yet.

    TRANSFER must have been read in this step (legs.lock_call reads it
    afresh), so a summary another thread or host stored is seen.
    """
    if transfer.summary_source is not None:
        return True
    if at_once is None and since is not None and (utcnow() - since).total_seconds() < deadline_seconds:
        return False
    inp = summary_input(session, transfer)
    store_summary(session, transfer.id,
                  fallback_summary(inp, at_once or f"deadline: no summary within {deadline_seconds:g} s"))
    session.refresh(transfer)
    return True
