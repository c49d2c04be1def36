"""200 whole calls on 20 agents under gunicorn on PostgreSQL: no 5xx, no deadlock, no agent booked twice.

The service runs as in production (gunicorn, several gthread workers) and
the calls overlap: callers ring in on 40 lines at once, agents take, decline
or let calls ring, a few callers give up in the queue, the caller or the
agent hangs up, and each agent freed takes the next waiting caller
(tests/benchmarks/load.py plays them and prints the same figures).
"""

import pytest

from tests.benchmarks.load import run_load
from tests.conftest import TEST_DATABASE


@pytest.mark.load
@pytest.mark.postgres
@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="PostgreSQL's row locks under load; SQLite serialises writers")
def test_two_hundred_callers_on_twenty_agents(clean_database):
    result = run_load(clean_database, calls=200, agents=20, lines=40)
    print(result.report())
    assert result.harness_errors == [] and result.tally.problems == []
    assert result.server_errors == [] and result.livekit_failures == []
    assert result.deadlocks == 0 and result.serialization_failures == 0
    assert result.double_booked == []
    assert result.unfinished_calls == [] and sum(result.call_statuses.values()) == 200
    assert result.busy_agents == []
    assert result.tally.counts["caller_talked"] + result.tally.counts["agent_talked"] > 0
    assert "Traceback" not in result.output, result.output[-3000:]
