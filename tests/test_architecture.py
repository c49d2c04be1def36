"""The shape of the code: no import cycle anywhere in the service, function-local imports included.

The layer contracts themselves are import-linter's (`lint-imports`, in
pyproject.toml), run by `make test` before the suite.
"""

import grimp


def _cycles(graph, modules):
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(module):
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_service_takes_part_in_an_import_cycle():
    graph = grimp.build_graph("app", exclude_type_checking_imports=True)
    # The package's own __init__ builds the app from every part, lazily; it is the root, not a member of a loop.
    modules = {m for m in graph.modules if m != "app"}
    assert _cycles(graph, modules) == []


TWILIO_WORDS = ("queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled")


def test_twilio_status_words_are_compared_only_where_the_form_is_parsed():
    import re

    from config import PROJECT_ROOT

    word = "|".join(re.escape(w) for w in TWILIO_WORDS)
    compared = re.compile(rf"""(==|!=|\bin)\s*[(\[{{]?\s*["']({word})["']""")
    # The parsing edge (forms), the REST gateway (Twilio's own API) and the stand-ins speak Twilio.
    edge = {"app/voice/forms.py", "app/gateways/twilio.py"}
    found = []
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        name = path.relative_to(PROJECT_ROOT).as_posix()
        if name in edge or name.startswith(("app/sandbox/", "app/demo/")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if compared.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


# Where the service commits: the request edges, and the named commit-before-network
# places, each with its test in tests/test_commit_points.py. The demo is a command
# of its own that narrates a script.
COMMITS = {
    "app/db.py": 1,  # a command's or a background session's scope
    "app/web/unit_of_work.py": 1,  # a request's one commit, and what runs after it (one helper for both)
    "app/voice/guard.py": 3,  # the guard: a delivery claim given up, a repeat's look, the step's commit
    "app/jobs/steps.py": 2,  # a background step's one commit, and what follows it
    # After the step's commit: a dial marked tried (its leg found still to be
    # rung) before it goes out, so no transaction is held while Twilio answers
    # it; its CallSid (or its hang-up) committed at once under the call's lock.
    "app/primitives/effects.py": 3,
    "app/primitives/presence.py": 1,  # before LiveKit says who is in a room
    "app/supervisor/listening.py": 1,  # before LiveKit changes a listening supervisor's permissions
    "app/demo/script.py": 1,
    "app/demo/live.py": 1,  # the live demo's supervisor, created when the database has none
    "app/jobs/reconciler.py": 2,  # the reconciler's advisory lock taken and given back, on a connection of its own
    # An outgoing event's delivery claimed before it is sent, and its attempt recorded after: no transaction
    # held while a subscriber answers.
    "app/outgoing/sending.py": 1,
}


def test_the_service_commits_only_at_its_edges_and_its_named_places():
    import re

    from config import PROJECT_ROOT

    found = {}
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        name = path.relative_to(PROJECT_ROOT).as_posix()
        if name.startswith("app/sandbox/"):
            continue
        count = len(re.findall(r"\.commit\(\)", path.read_text()))
        if count:
            found[name] = count
    assert found == COMMITS


def test_twilios_form_stops_at_the_voice_edge():
    """Only the Twilio webhooks (app/voice/) read Twilio's form; the domain is given inputs in its own words."""
    graph = grimp.build_graph("app", exclude_type_checking_imports=True)
    readers = graph.find_modules_that_directly_import("app.voice.forms")
    assert sorted(m for m in readers if not m.startswith("app.voice")) == []


def test_no_webhook_view_loads_or_locks_a_leg_or_a_call_by_hand():
    """The guard loads, locks and checks what a webhook serves (ServesLeg, ServesCall) and hands it to the view."""
    import re

    from config import PROJECT_ROOT

    by_hand = re.compile(r"\b(lock_leg|lock_call|find_leg|call_by_sid)\(|session\.get\((Leg|Call),")
    found = []
    for path in sorted((PROJECT_ROOT / "app" / "voice").glob("*.py")):
        if path.name == "guard.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if by_hand.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []


def test_every_module_of_the_service_is_on_a_floor():
    """Each module of app/ falls under one floor of the layers contract (pyproject.toml), checked by lint-imports."""
    import tomllib

    from config import PROJECT_ROOT

    contract, = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert contract["type"] == "layers"
    floors = [name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")]
    graph = grimp.build_graph("app", exclude_type_checking_imports=True)
    # The package itself is the factory, above every floor.
    homeless = sorted(module for module in graph.modules - {"app"}
                      if not any(module == floor or module.startswith(floor + ".") for floor in floors))
    assert homeless == []
