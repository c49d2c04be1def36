"""A transfer action racing a party's hang-up, under gunicorn on PostgreSQL: always a consistent end.

Each test plays one pair of requests again and again (tests/benchmarks/races.py
plays them and prints the same report): the action (the JSON API's, or a
button of a browser agent's console) and the hanging-up party's final status
callback leave together from two threads, one or the other a few
milliseconds ahead, changing from race to race. Once the simulated Twilio
and LiveKit have delivered everything pending, every race must have ended
consistent: no 5xx (a 409 for the request that lost is fine); a caller who
hung up leaves a final call, final legs, no transfer under way, idle agents
and no phone ringing at Twilio; a caller still there is with exactly one
agent in the call's room, or back in the queue; no final call became live
again, and no phone was dialled for a caller already gone.
"""

import pytest

from tests.benchmarks.races import run_pair
from tests.conftest import TEST_DATABASE

REPEATS = 10
# The console's races take longer to set up, and three-way and swap add to the run: fewer, to stay near 3 minutes.
FEWER_REPEATS = 6

# Each pair, what its races must show, and how often it is played.
PAIRS = {
    # Completing a consult as the caller hangs up ends the call whole: B and A freed, nothing left ringing.
    "complete-vs-caller": REPEATS,
    # Cancelling a consult as the caller hangs up never sends A back to a caller who is gone.
    "cancel-vs-caller": REPEATS,
    # Whichever completes the transfer, the API or A leaving, the caller ends with B alone in the call's room.
    "complete-vs-agent": REPEATS,
    # Whichever ends the consult, the API's cancel or B leaving, the caller ends with A alone in the call's room.
    "cancel-vs-target": REPEATS,
    # A three-way call or a swap asked for as the caller hangs up leaves nobody on a call with nobody.
    "three-way-vs-caller": FEWER_REPEATS,
    "swap-vs-caller": FEWER_REPEATS,
    # Starting a transfer as the caller hangs up leaves no target phone ringing and no agent held for a gone caller.
    "start-vs-caller": REPEATS,
    # A transfer accepted in the browser as the caller hangs up never leaves B on a call with nobody.
    "console-accept-vs-caller": FEWER_REPEATS,
    # A transfer declined in the browser as the caller hangs up never sends A back to a caller who is gone.
    "console-decline-vs-caller": FEWER_REPEATS,
    # The browser agent and the caller hanging up together end the call once, with the agent free.
    "console-hangup-vs-caller": FEWER_REPEATS,
}


@pytest.mark.load
@pytest.mark.postgres
@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="PostgreSQL's row locks under gunicorn's workers")
@pytest.mark.parametrize("pair", PAIRS)
def test_an_action_racing_a_hang_up_always_ends_consistent(clean_database, pair):
    """Each pair, raced again and again with either request ahead: no 5xx, and a consistent end every time."""
    result = run_pair(clean_database, pair, repeats=PAIRS[pair])
    print(result.report())
    assert result.harness_errors == [], result.report()
    assert result.with_server_errors == [], result.report()
    assert result.inconsistent == [], result.report()
