"""Every state column has one writer: its owner in app/states/ (a source scan), over a table of allowed moves."""

import ast

import pytest

from app.models import (
    Activity,
    CallbackState,
    CallStatus,
    LegStatus,
    Presence,
    TransferState,
)
from app.states.agents import ACTIVITY_MOVES, PRESENCE_MOVES
from app.states.callbacks import CALLBACK_MOVES
from app.states.calls import CALL_MOVES
from app.states.legs import LEG_MOVES
from app.states.moves import IllegalMove, check_move
from app.states.transfers import TRANSFER_MOVES
from config import PROJECT_ROOT

# Each state column, by the attribute name it is written through, and the modules allowed to write it.
OWNERS = {
    "status": {"app/states/calls.py", "app/states/legs.py"},  # Call.status, Leg.status
    "state": {"app/states/transfers.py", "app/states/callbacks.py"},  # Transfer.state, Callback.state
    "activity": {"app/states/agents.py"},
    "presence": {"app/states/agents.py"},
    "delivery_state": {"app/outgoing/sending.py"},  # EventDelivery.delivery_state (below the state machines)
    # When a state last changed is written with it.
    "activity_changed_at": {"app/states/agents.py"},
    "presence_changed_at": {"app/states/agents.py"},
    "connected_at": {"app/states/legs.py"},  # Leg.connected_at
}
MODELS = {"Call", "Leg", "Transfer", "Agent", "Callback"}


def _writes(tree: ast.AST):
    """(line, column name) of every assignment to a state attribute, and every state keyword given to a model
    or to an UPDATE's values()."""
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if (isinstance(target, ast.Attribute) and target.attr in OWNERS
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")):
                yield node.lineno, target.attr
        if isinstance(node, ast.Call):
            func = node.func
            model = isinstance(func, ast.Name) and func.id in MODELS  # the models are imported by name
            if model or (isinstance(func, ast.Attribute) and func.attr == "values"):
                for keyword in node.keywords:
                    if keyword.arg in OWNERS:
                        yield node.lineno, keyword.arg


def test_no_module_but_its_owner_writes_a_state_column():
    found = []
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        name = path.relative_to(PROJECT_ROOT).as_posix()
        if name.startswith(("app/sandbox/", "app/demo/")):
            continue
        for line, column in _writes(ast.parse(path.read_text(), name)):
            if name not in OWNERS[column]:
                found.append(f"{name}:{line}: writes {column}")
    assert found == []


def test_the_scan_sees_each_way_of_writing():
    source = "call.status = 'x'\nLeg(status='y')\nupdate(Agent).values(activity='z')\nself.status = 1\n"
    assert sorted(column for _, column in _writes(ast.parse(source))) == ["activity", "status", "status"]


@pytest.mark.parametrize("table, states", [
    (CALL_MOVES, CallStatus), (LEG_MOVES, LegStatus), (TRANSFER_MOVES, TransferState),
    (ACTIVITY_MOVES, Activity), (PRESENCE_MOVES, Presence), (CALLBACK_MOVES, CallbackState),
])
def test_each_table_names_only_its_own_states(table, states):
    named = set(table) | {to for moves in table.values() for to in moves}
    assert named <= set(states)


def test_final_states_have_no_way_out():
    from app.models import (
        FINAL_CALL_STATUSES,
        FINAL_CALLBACK_STATES,
        FINAL_LEG_STATUSES,
        FINAL_TRANSFER_STATES,
    )

    for table, final in ((CALL_MOVES, FINAL_CALL_STATUSES), (LEG_MOVES, FINAL_LEG_STATUSES),
                         (TRANSFER_MOVES, FINAL_TRANSFER_STATES), (CALLBACK_MOVES, FINAL_CALLBACK_STATES)):
        assert not any(table.get(state) for state in final)


def test_every_live_state_can_end():
    assert all(moves & {CallStatus.COMPLETED, CallStatus.ABANDONED} for moves in CALL_MOVES.values())
    assert all(LegStatus.ENDED in moves or LegStatus.CANCELED in moves for moves in LEG_MOVES.values())
    assert all(TransferState.CALLER_HUNG_UP in moves for moves in TRANSFER_MOVES.values())


@pytest.mark.parametrize("table, current, to", [
    (CALL_MOVES, CallStatus.COMPLETED, CallStatus.QUEUED),  # a finished call is never queued again
    (CALL_MOVES, CallStatus.IVR, CallStatus.CONNECTED),  # nobody is connected before the IVR chose a queue
    (LEG_MOVES, LegStatus.ENDED, LegStatus.CONNECTED),
    (TRANSFER_MOVES, TransferState.CANCELLED, TransferState.CONSULTING),
    (TRANSFER_MOVES, TransferState.REQUESTED, TransferState.CONSULTING),
    (ACTIVITY_MOVES, Activity.LEAVING, Activity.RINGING),  # nobody rings a phone still saying goodbye
    (CALLBACK_MOVES, CallbackState.FAILED, CallbackState.CALLING),  # a failed callback is never dialled again
])
def test_a_move_the_table_does_not_allow_is_refused(table, current, to):
    with pytest.raises(IllegalMove, match=f"{current} -> {to}"):
        check_move("row", 1, table, current, to)


def test_a_move_to_the_state_already_held_is_no_move():
    assert check_move("call", 1, CALL_MOVES, CallStatus.QUEUED, CallStatus.QUEUED) is False
    assert check_move("call", 1, CALL_MOVES, CallStatus.QUEUED, CallStatus.RINGING_AGENT) is True
