"""A worker killed between a step's commit and its effects: the outbox keeps them, and one reconciler pass
carries them out, so the call is whole again.

The worker is a real process of its own on the test's database: it takes one
request (the API completing a warm transfer), commits the step, and is
killed (os._exit) where it would start telling Twilio and LiveKit. Nothing
of what it meant to do reached them: the caller and the target are left in
different rooms, as the issue that asked for the outbox measured.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

from sqlalchemy import func, select

from app.jobs.setup import reconciler_of
from app.models import OutboxEffect
from tests.transfer_helpers import (
    agent_activity,
    call_row,
    consulting,
    in_room,
    transfer_row,
)

WORKER = """
import os, pickle, sys
from app import clock, create_app
from app.jobs import steps

settings, now, path, headers = pickle.load(open(sys.argv[1], "rb"))
clock.use_clock(lambda: now)  # the test's virtual time, so the rows it leaves are dated as the call's
app = create_app(settings)
steps.carry_out = lambda t: os._exit(9)  # killed after the commit, before the first effect goes out
answer = app.test_client().post(path, headers=headers)
print("not killed:", answer.status_code, answer.get_data(as_text=True))
"""


def _outbox(centre) -> int:
    with centre.db() as session:
        return session.scalar(select(func.count()).select_from(OutboxEffect))


def test_a_worker_killed_after_committing_a_transfer_leaves_its_effects_for_the_reconciler(centre, api_headers,
                                                                                          tmp_path):
    caller, alice, bob = consulting(centre)
    transfer = transfer_row(centre)
    call_id = str(call_row(centre, caller.sid).id)
    consult = transfer.consult_room.split("_", 1)[1]
    job = tmp_path / "job.pickle"
    job.write_bytes(pickle.dumps((centre.app.config["SETTINGS"], centre.clock.now(),
                                  f"/api/transfers/{transfer.id}/complete", api_headers(centre.app))))
    worker = subprocess.run([sys.executable, "-c", WORKER, str(job)], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 9, worker.stdout + worker.stderr[-2000:]

    assert transfer_row(centre).state == "completed"  # the step is committed...
    assert in_room(bob, consult) and in_room(alice, consult)  # ...but nobody was moved
    assert _outbox(centre) == 4  # Alice released, Bob and the caller into the call's room, the consult room closed

    centre.network.advance(31)  # a live worker would have finished long ago: these were left by a dead one
    outcome = reconciler_of(centre.app).run_once()
    centre.network.run_pending()
    assert outcome.calls_recovered == {int(call_id)} and _outbox(centre) == 0
    assert in_room(caller, call_id) and in_room(bob, call_id)
    assert not alice.live and "Transfer complete" in alice.heard_text
    assert transfer.consult_room not in centre.livekit.rooms
    assert centre.timeline(caller.sid).count("effect_recovered") == 4
    assert agent_activity(centre, "101") == "idle" and agent_activity(centre, "102") == "on_call"
