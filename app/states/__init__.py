"""The state machines: one writer for each state column, over a table of the moves it allows.

`Call.status` (calls.py), `Leg.status` (legs.py), `Transfer.state`
(transfers.py), and an agent's `activity` and `presence` (agents.py) are
each changed by one function only. It checks the move against its table,
writes what goes with it (an end time, an end reason), logs it
(`state_moved`), and writes the timeline event the step names. A move the
table does not allow is a defect in the step that asked for it, and raises
IllegalMove: the step is rolled back, not half done. A move to the state
already held changes nothing. `tests/test_state_owners.py` fails when any
other module assigns one of these columns.
"""
