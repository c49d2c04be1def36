"""Browser tests wait in a way the pages' Content-Security-Policy allows, so they pass however slow the machine.

Playwright's `wait_for_function` checks its predicate once at once, then on
every animation frame. An expression (`"window.n === 1"`) is `eval`ed in the
page at each check; the first check is Playwright's own, but the later ones
run as the page's, and the pages' policy (`script-src` without
'unsafe-eval') refuses them: such a wait passes only if the condition already
holds at the first check, and fails with an EvalError on a machine a little
slower. A function (`"() => window.n === 1"`) is evaluated once and then
called, which the policy allows. Checked on every call in the browser tests.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _waits_on_expressions(root: Path = TESTS) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "wait_for_function" and node.args):
                predicate = node.args[0]
                text = "".join(part.value for part in ast.walk(predicate)
                               if isinstance(part, ast.Constant) and isinstance(part.value, str))
                if "=>" not in text.split("\n")[0] and not text.lstrip().startswith(("function", "async")):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:60]!r}")
    return found


def test_every_wait_for_function_passes_a_function_not_an_expression():
    assert _waits_on_expressions() == []


def test_the_check_finds_an_expression(tmp_path):
    (tmp_path / "test_example.py").write_text('page.wait_for_function("window.n === 1")\n'
                                              'page.wait_for_function("() => window.n === 1")\n')
    assert _waits_on_expressions(tmp_path) == ["test_example.py:1: 'window.n === 1'"]
