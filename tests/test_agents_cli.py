"""The roster commands round-trip agents and queues."""

import json

import pytest

from app.agents.service import DEMO_ROSTER


def test_demo_roster_loads_and_lists_as_json(runner):
    result = runner.invoke(args=["roster", "load", str(DEMO_ROSTER)])
    assert result.exit_code == 0, result.output
    assert "loaded 2 queues and 4 agents" in result.output

    agents = json.loads(runner.invoke(args=["agents", "list", "--json"]).output)
    assert [a["extension"] for a in agents] == ["101", "102", "201", "202"]
    assert agents[0] == {
        "name": "Alice Moreno",
        "extension": "101",
        "sip_uri": "sip:alice@switchboard-demo.sip.twilio.com",
        "skills": ["billing"],
        "presence": "available",
        "activity": "idle",
        "missed_in_row": 0,
    }
    queues = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)
    assert [(q["name"], q["dtmf_code"], q["default"]) for q in queues] == [("billing", "1", True), ("technical", "2", False)]


def test_roster_round_trips_through_a_json_file(runner, tmp_path):
    runner.invoke(args=["roster", "load"])
    exported = {
        "queues": json.loads(runner.invoke(args=["queues", "list", "--json"]).output),
        "agents": json.loads(runner.invoke(args=["agents", "list", "--json"]).output),
    }
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(exported))
    assert runner.invoke(args=["roster", "load", str(path)]).exit_code == 0
    again = json.loads(runner.invoke(args=["agents", "list", "--json"]).output)
    assert again == exported["agents"]


def test_add_presence_remove(runner):
    result = runner.invoke(
        args=["agents", "add", "--name", "Eve", "--extension", "301", "--sip-uri", "sip:eve@x.sip.twilio.com",
              "--skills", "Billing, technical"]
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["agents", "presence", "301", "available"]).exit_code == 0
    agents = json.loads(runner.invoke(args=["agents", "list", "--json"]).output)
    assert agents == [
        {
            "name": "Eve",
            "extension": "301",
            "sip_uri": "sip:eve@x.sip.twilio.com",
            "skills": ["billing", "technical"],
            "presence": "available",
            "activity": "idle",
            "missed_in_row": 0,
        }
    ]
    assert runner.invoke(args=["agents", "remove", "301"]).exit_code == 0
    assert json.loads(runner.invoke(args=["agents", "list", "--json"]).output) == []


def test_bad_input_is_refused_in_words(runner, tmp_path):
    bad = runner.invoke(args=["agents", "add", "--name", "X", "--extension", "1a"])
    assert bad.exit_code != 0 and "extension must be 2 to 6 digits" in bad.output
    missing = runner.invoke(args=["agents", "presence", "999", "away"])
    assert missing.exit_code != 0 and "no agent with extension 999" in missing.output
    duplicate = tmp_path / "dup.toml"
    duplicate.write_text('[[agents]]\nname="A"\nextension="11"\n[[agents]]\nname="B"\nextension="11"\n')
    result = runner.invoke(args=["roster", "load", str(duplicate)])
    assert result.exit_code != 0 and "duplicate agent extension: 11" in result.output
    assert json.loads(runner.invoke(args=["agents", "list", "--json"]).output) == []
    broken = tmp_path / "broken.toml"
    broken.write_text("[[agents]\n")
    result = runner.invoke(args=["roster", "load", str(broken)])
    assert result.exit_code != 0 and "not valid TOML/JSON" in result.output


def test_if_empty_never_loads_over_an_existing_roster(runner):
    assert runner.invoke(args=["agents", "add", "--name", "Real Agent", "--extension", "301",
                               "--skills", "billing"]).exit_code == 0
    result = runner.invoke(args=["roster", "load", "--if-empty"])
    assert result.exit_code == 0 and "roster not loaded" in result.output
    agents = json.loads(runner.invoke(args=["agents", "list", "--json"]).output)
    assert [a["extension"] for a in agents] == ["301"]


def test_if_empty_loads_into_an_empty_database(runner):
    result = runner.invoke(args=["roster", "load", "--if-empty"])
    assert result.exit_code == 0 and "loaded 2 queues and 4 agents" in result.output


def test_agents_list_has_a_header_and_names_browser_agents(runner):
    assert "no agents yet" in runner.invoke(args=["agents", "list"]).output
    runner.invoke(args=["agents", "add", "--name", "Web Agent", "--extension", "301"])
    lines = runner.invoke(args=["agents", "list"]).output.splitlines()
    assert lines[0].split() == ["ext", "name", "presence", "activity", "skills", "softphone"]
    assert lines[1].split()[0] == "301" and lines[1].split()[-1] == "browser"


def test_a_queue_keeps_its_own_settings_from_the_roster_and_the_cli(runner, tmp_path):
    roster = tmp_path / "roster.toml"
    roster.write_text('[[queues]]\nname = "sales"\ndtmf_code = "3"\nwrap_up_seconds = 45\nmax_wait_seconds = 300\n')
    assert runner.invoke(args=["roster", "load", str(roster)]).exit_code == 0
    sales = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[0]
    assert (sales["wrap_up_seconds"], sales["announce_seconds"], sales["max_wait_seconds"]) == (45, None, 300)
    changed = runner.invoke(args=["queues", "add", "--name", "sales", "--dtmf-code", "3", "--announce-seconds", "30"])
    assert changed.exit_code == 0, changed.output
    sales = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[0]
    # What the CLI names is the whole of the queue's own settings; the others follow the service's again.
    assert (sales["wrap_up_seconds"], sales["announce_seconds"], sales["max_wait_seconds"]) == (None, 30, None)


def test_bad_queue_settings_are_refused_in_words(runner, tmp_path):
    roster = tmp_path / "roster.toml"
    roster.write_text('[[queues]]\nname = "sales"\ndtmf_code = "3"\nwrap_up_seconds = "soon"\n')
    result = runner.invoke(args=["roster", "load", str(roster)])
    assert result.exit_code != 0 and "queue 'sales': wrap_up_seconds must be a whole number of seconds" in result.output
    negative = runner.invoke(args=["queues", "add", "--name", "sales", "--dtmf-code", "3", "--max-wait-seconds", "-5"])
    assert negative.exit_code != 0 and "max_wait_seconds must be a whole number of seconds, 0 or more" in negative.output


def test_a_queue_keeps_its_priority_and_callback_attempts_and_bad_ones_are_refused_in_words(runner, tmp_path):
    roster = tmp_path / "roster.toml"
    roster.write_text('[[queues]]\nname = "vip"\ndtmf_code = "9"\npriority = 10\ncallback_attempts = 5\n')
    assert runner.invoke(args=["roster", "load", str(roster)]).exit_code == 0
    vip = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[0]
    assert (vip["priority"], vip["callback_attempts"]) == (10, 5)
    high = runner.invoke(args=["queues", "add", "--name", "vip", "--dtmf-code", "9", "--priority", "101"])
    assert high.exit_code != 0 and "queue 'vip': priority must be a whole number from -100 to 100" in high.output
    none = runner.invoke(args=["queues", "add", "--name", "vip", "--dtmf-code", "9", "--callback-attempts", "0"])
    assert none.exit_code != 0 and "callback_attempts must be a whole number of attempts, 1 or more" in none.output


HOURS_ROSTER = '''
[[queues]]
name = "billing"
dtmf_code = "1"
timezone = "Europe/London"
hours = {mon-fri = "09:00-17:00", sat = ["10:00-12:00", "13:00-16:00"], sun = "closed"}
holidays = [2026-12-25, "2026-12-26"]
overflow = "technical"

[[queues]]
name = "technical"
dtmf_code = "2"
hours = {fri = "22:00-06:00"}
overflow = "voicemail"
'''


def test_a_queue_keeps_its_hours_holidays_and_overflow_from_the_roster_and_the_cli(runner, tmp_path):
    roster = tmp_path / "roster.toml"
    roster.write_text(HOURS_ROSTER)
    loaded = runner.invoke(args=["roster", "load", str(roster)])
    assert loaded.exit_code == 0, loaded.output
    billing, technical = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)
    assert billing["timezone"] == "Europe/London"
    assert billing["hours"] == {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"],
                                "thu": ["09:00-17:00"], "fri": ["09:00-17:00"], "sat": ["10:00-12:00", "13:00-16:00"]}
    assert billing["holidays"] == ["2026-12-25", "2026-12-26"] and billing["overflow"] == "technical"
    assert (technical["timezone"], technical["hours"], technical["holidays"], technical["overflow"]) == (
        None, {"fri": ["22:00-06:00"]}, [], "voicemail")
    changed = runner.invoke(args=["queues", "add", "--name", "technical", "--dtmf-code", "2",
                                  "--timezone", "America/New_York", "--hours", "mon-fri=08:00-20:00",
                                  "--hours", "sat=10:00-14:00", "--holiday", "2026-07-04", "--overflow", "billing"])
    assert changed.exit_code == 0, changed.output
    technical = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[1]
    assert technical["timezone"] == "America/New_York" and technical["overflow"] == "billing"
    assert technical["hours"]["sat"] == ["10:00-14:00"] and "sun" not in technical["hours"]
    assert technical["holidays"] == ["2026-07-04"]
    # What the CLI names is the whole of the queue's own settings: no hours is always open again.
    plain = runner.invoke(args=["queues", "add", "--name", "technical", "--dtmf-code", "2"])
    assert plain.exit_code == 0, plain.output
    technical = json.loads(runner.invoke(args=["queues", "list", "--json"]).output)[1]
    assert (technical["timezone"], technical["hours"], technical["holidays"], technical["overflow"]) == (
        None, None, [], None)


@pytest.mark.parametrize(("entry", "words"), [
    ('timezone = "Mars/Olympus_Mons"', "queue 'sales': timezone 'Mars/Olympus_Mons' is not an IANA time zone name"),
    ('hours = {mon = "9 to 5"}', "queue 'sales': hours for Monday: '9 to 5' is not a range"),
    ('hours = {mon-fri = "09:00-17:00", fri = "closed"}', "queue 'sales': hours name Friday twice"),
    ('hours = {someday = "09:00-17:00"}', "queue 'sales': hours day 'someday' is not a day"),
    ('holidays = ["25/12/2026"]', "queue 'sales': holiday '25/12/2026' is not a date as YYYY-MM-DD"),
    ('overflow = "sales"', "queue 'sales': overflow 'sales' is the queue itself"),
    ('overflow = "nowhere"', "queue 'sales': overflow 'nowhere' is neither a queue nor one of options, voicemail, "
                             "callback"),
])
def test_bad_hours_and_overflows_in_the_roster_are_refused_in_words_and_nothing_is_loaded(runner, tmp_path, entry,
                                                                                          words):
    roster = tmp_path / "roster.toml"
    roster.write_text(f'[[queues]]\nname = "sales"\ndtmf_code = "3"\n{entry}\n')
    result = runner.invoke(args=["roster", "load", str(roster)])
    assert result.exit_code != 0 and words in result.output
    assert json.loads(runner.invoke(args=["queues", "list", "--json"]).output) == []


def test_bad_hours_and_overflows_on_the_command_line_are_refused_in_words(runner):
    def add(*options):
        return runner.invoke(args=["queues", "add", "--name", "sales", "--dtmf-code", "3", *options])

    assert "queue 'sales': hours 'mon 09:00-17:00' must be DAYS=RANGES" in add("--hours", "mon 09:00-17:00").output
    assert "queue 'sales': hours for Saturday: 09:00-13:00 and 12:00-17:00 overlap" in add(
        "--hours", "sat=09:00-13:00,12:00-17:00").output
    assert "timezone 'Europe/Londn' is not an IANA time zone name" in add("--timezone", "Europe/Londn").output
    assert "holiday 'tomorrow' is not a date" in add("--holiday", "tomorrow").output
    refused = add("--overflow", "billing")  # no queue is named billing in this database
    assert refused.exit_code != 0 and "overflow 'billing' is neither a queue nor one of" in refused.output
    assert json.loads(runner.invoke(args=["queues", "list", "--json"]).output) == []
    assert add("--overflow", "callback").exit_code == 0
