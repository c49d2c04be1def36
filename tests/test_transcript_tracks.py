"""Transcripts are stored whatever Twilio's `Track` says for the service's own inbound transcriptions.

Every transcription the service starts is of one inbound track, labelled "caller" or "agent". Twilio does not
document whether its events then say `Track=inbound_track` or the label; the Twilio stand-in sends either
(`track_labels`), and both reach the utterances, and so the summary. (What a leg hears, outbound_track, is never
transcribed: tests/test_inbound_calls.py.)
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Utterance
from app.sandbox.scenarios import CONVERSATION
from tests.transfer_helpers import connected_call


@pytest.mark.parametrize("labels", [False, True], ids=["inbound_track", "the label"])
def test_both_parties_words_are_kept_whichever_track_name_twilio_sends(centre, labels):
    centre.network.track_labels = labels
    caller, alice = connected_call(centre)
    with centre.db() as session:
        kept = [(u.speaker, u.text) for u in session.scalars(select(Utterance).order_by(Utterance.id))]
    assert {speaker for speaker, _ in kept} == {"caller", "agent"}
    assert len(kept) == len(CONVERSATION)
    sent = [d for d in centre.network.sent("transcription") if "TranscriptionData" in d.params]
    assert {d.params["Track"] for d in sent} == ({"caller", "agent"} if labels else {"inbound_track"})

