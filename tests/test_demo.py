"""`flask demo`: a whole warm transfer over loopback HTTP, narrated, on a fresh or an empty database."""

from sqlalchemy import select

from app.database import make_engine
from app.demo.cli import demo_command
from app.models import Agent, Transfer


def _rows(database_url, model):
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(model)))
    finally:
        engine.dispose()


def test_demo_on_a_fresh_database_migrates_loads_the_roster_and_completes(make_app, settings, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'fresh' / 'switchboard.db'}"
    app = make_app(settings, database_url=database_url)

    result = app.test_cli_runner().invoke(demo_command, ["--database", database_url])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "has no schema yet: migrating it" in out
    assert "loaded the demo roster (2 queues, 4 agents)" in out
    assert 'Bob Okafor hears: "Transfer from Alice Moreno.' in out
    assert "Press 1 to accept, 2 to decline" in out
    assert "Alice Moreno hears: \"Transfer complete. Goodbye.\"" in out
    assert "4111" not in out.split("Timeline of call")[1]  # redacted in what was stored and spoken
    for event in ("transfer_requested", "summary_ready", "transfer_consulting", "transfer_completed"):
        assert f"  {event}" in out
    spoken = out.split("Words spoken to Bob Okafor before accepting:")[1]
    assert "[card number removed]" in spoken
    assert out.rstrip().splitlines()[-1].startswith(
        "Result: transfer completed; summary source: llm (openai gpt-4o-mini on the local stand-in, ")

    (transfer,) = _rows(database_url, Transfer)
    assert transfer.state == "completed" and transfer.summary_source == "llm"
    assert transfer.summary_spoken in " ".join(spoken.split())
    # Everyone hung up: the agents are free for the next run.
    assert {a.extension: a.activity for a in _rows(database_url, Agent)}["102"] == "idle"


def test_demo_with_a_slow_llm_speaks_the_fallback_and_discards_the_late_answer(make_app, settings):
    app = make_app(settings)

    result = app.test_cli_runner().invoke(demo_command, ["--llm", "slow", "--database", settings.database_url])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "migrating" not in out and "loaded the demo roster" in out
    assert "Automatic summary unavailable" in out.split("Words spoken to Bob Okafor")[1]
    assert "  summary_fallback_used" in out and "  summary_discarded_late" in out
    assert out.rstrip().splitlines()[-1] == (
        "Result: transfer completed; summary source: fallback (deadline: no summary within 1 s).")


def test_demo_refuses_to_run_when_an_agent_it_needs_is_away(make_app, settings):
    app = make_app(settings)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["roster", "load"]).exit_code == 0
    assert runner.invoke(args=["agents", "presence", "102", "away"]).exit_code == 0

    result = runner.invoke(demo_command, ["--database", settings.database_url])

    assert result.exit_code == 1
    assert "demo failed before the call: agent 102 (Bob Okafor) is away: flask agents presence 102 available" in result.output


def test_by_default_the_demo_runs_again_and_again_and_leaves_the_services_database_alone(make_app, settings):
    app = make_app(settings)
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(demo_command, [])
        assert result.exit_code == 0, result.output
        assert "has no schema yet: migrating it" in result.stdout  # a fresh file of its own, every time
        assert "this number has called" not in result.stdout.lower()
    assert _rows(settings.database_url, Transfer) == [] and _rows(settings.database_url, Agent) == []
