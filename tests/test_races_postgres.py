"""A transfer action racing a party's hang-up, under gunicorn on PostgreSQL: always a consistent end.

Each test plays one pair of requests again and again (tests/benchmarks/races.py
plays them and prints the same report): the action (the JSON API's complete,
cancel, three-way, swap or start, or a button of a browser agent's console)
and the final status callback of the party hanging up (the caller, the
transferring agent A, or the target B) leave together from two threads, one
or the other a few milliseconds ahead, changing from race to race. Once the
simulated Twilio and LiveKit have delivered everything pending (and B, still
rung by a transfer A left, has answered or been busy), every race must have
ended consistent: no 5xx (a 409 for the request that lost is fine); no
transfer under way, and none opened that neither request asked for; every
live leg in the database live at Twilio and every leg over in the database
over at Twilio; each agent with no live leg idle, each with one not idle. A
caller who hung up leaves a final call, final legs, idle agents and no phone
ringing at Twilio, and no phone was dialled for them after. A caller still
there is connected in the call's room with the agents whose legs are
connected there (one, or two after a three-way), every other agent leg over;
or waits in the queue; or, when the only agent left with them hung up, was
thanked (the goodbye reached their phone) and the call is over. Which of
these it is follows the service's rules for the order the two requests were
served in (races.Pair.if_action_first, if_hang_up_first). No final call
became live again, and no agent was rung after the caller had gone.
"""

import pytest

from tests.benchmarks.races import run_pair
from tests.conftest import TEST_DATABASE

REPEATS = 10
# The console's races take longer to set up, and three-way and swap add to the run: fewer, to stay near 3 minutes.
FEWER_REPEATS = 6
# Each party's hang-up against each action adds seven pairs: fewer still (both orders, and near-ties, are played
# in five: HEAD_STARTS_MS), so that the whole file stays under 5 minutes on two cores.
AGAINST_A_PARTY = 5

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
    # A cancelled consult sends A back to the caller: A then hanging up leaves the caller thanked and the call
    # over; A hanging up first completes the transfer and B keeps the caller.
    "cancel-vs-agent": AGAINST_A_PARTY,
    # Whichever comes first, the three-way call or A leaving, the caller ends with B alone in the call's room.
    "three-way-vs-agent": AGAINST_A_PARTY,
    # A swap and A leaving: B keeps the caller, not left holding in the consult room.
    "swap-vs-agent": AGAINST_A_PARTY,
    # A transfer started as A hangs up: B, still rung, gets the caller on accepting (the caller waits in the
    # queue again if B is busy); A gone first, nothing is started and the caller is thanked.
    "start-vs-agent": AGAINST_A_PARTY,
    # A completed transfer leaves B alone with the caller: B then hanging up leaves the caller thanked and the
    # call over; B hanging up first ends the consult and A goes back to the caller.
    "complete-vs-target": AGAINST_A_PARTY,
    # Whichever comes first, the three-way call or B leaving, the caller ends with A alone in the call's room.
    "three-way-vs-target": AGAINST_A_PARTY,
    # A swap and B leaving: A ends with the caller, and no transfer is left under way.
    "swap-vs-target": AGAINST_A_PARTY,
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
