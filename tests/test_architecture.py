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
    edge = {"app/telephony/forms.py", "app/gateways/twilio.py"}
    found = []
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        name = path.relative_to(PROJECT_ROOT).as_posix()
        if name in edge or name.startswith(("app/sandbox/", "app/demo/")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if compared.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
