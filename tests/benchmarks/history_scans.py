"""Benchmark: what whole warm transfers read of a long call history, table by table.

    .venv/bin/python -m tests.benchmarks.history_scans [--history 100000] [--transfers 2] [--slow-ms 4]

Needs PostgreSQL on 127.0.0.1:5432. In a database of its own (migrated, the
demo roster loaded, dropped at the end), HISTORY ended calls are written
straight into the database first, as a service in use for a while holds
them: each with a caller's leg, an event and a webhook delivery, a third
with a finished transfer, their callers' numbers shared by two calls each.
Then TRANSFERS whole warm transfers run through the service under
gunicorn (tests/benchmarks/call_flow.py), and PostgreSQL's own counters
(pg_stat_user_tables) say, for each table, how many sequential scans they
made and how many rows those read, against the index scans. A lookup a
call makes that no index serves reads the whole history, once per webhook
that makes it. The statements that took SLOW_MS or longer are listed from
PostgreSQL's log when the server's log can be read here (the database's
`log_min_duration_statement` is set for the run). Nothing here asserts a
time: tests/test_lookup_indexes.py checks the plans themselves.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import create_engine, text

from app.logs import configure_logging
from app.sandbox.livekit_server import LiveKitStandIn
from app.sandbox.llm_server import LLMStandIn
from app.sandbox.served import gunicorn_service
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster, whole_transfers
from tests.benchmarks.side_by_side import LIVEKIT_KEY, LIVEKIT_SECRET

SERVER_LOG = Path("/var/log/postgresql/postgresql-15-main.log")  # Debian's PostgreSQL 15, where it logs
HISTORY = [
    """INSERT INTO calls (call_sid, direction, from_number, to_number, ivr_attempts, status, created_at, ended_at,
                          queue_id, room_name)
       SELECT 'CAhistory' || g, 'inbound', '+1666' || (g % :numbers), '+15550100000', 0, 'completed',
              now() - interval '1 day' - g * interval '1 second', now() - interval '1 day' - g * interval '1 second',
              (SELECT min(id) FROM queues), 'history-room-' || g
       FROM generate_series(1, :count) AS g""",
    """INSERT INTO legs (call_id, role, status, twilio_call_sid, placement, created_at, room_name)
       SELECT id, 'caller', 'completed', 'CAleg' || id, 0, created_at, room_name FROM calls
       WHERE call_sid LIKE 'CAhistory%'""",
    """INSERT INTO transfers (call_id, mode, trigger, state, consult_room, created_at, updated_at, tried_agent_ids)
       SELECT id, 'warm', 'dtmf', 'completed', 'history-consult-' || id, created_at, created_at, '[]' FROM calls
       WHERE call_sid LIKE 'CAhistory%' AND id % 3 = 0""",
    """INSERT INTO events (call_id, name, detail, created_at)
       SELECT id, 'call_ended', '{}', created_at FROM calls WHERE call_sid LIKE 'CAhistory%'""",
    """INSERT INTO webhook_deliveries (source, delivery_key, endpoint, status_code, content_type, body, created_at)
       SELECT 'twilio', 'history-' || g, '/twilio/voice', 200, 'text/xml', '<Response/>',
              now() - interval '1 day' - g * interval '1 second'
       FROM generate_series(1, :count) AS g""",
]
STATS = text("SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) FROM pg_stat_user_tables")


def write_history(url: str, count: int) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in HISTORY:
            connection.execute(text(statement), {"count": count, "numbers": max(count // 2, 1)})
        connection.execute(text("ANALYZE"))
    engine.dispose()


def table_stats(url: str) -> dict[str, tuple[int, int, int]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = {name: (scans, rows, index) for name, scans, rows, index in connection.execute(STATS)}
    engine.dispose()
    return found


def slow_statements(log_from: int, database: str) -> dict[str, list[float]]:
    """The statements of DATABASE that PostgreSQL logged as slow since byte LOG_FROM of its log, by text."""
    found: dict[str, list[float]] = defaultdict(list)
    with SERVER_LOG.open(errors="replace") as log:
        log.seek(log_from)
        entries, current = [], None
        for line in log:
            if re.match(r"^\d{4}-\d\d-\d\d ", line):
                if current is not None:
                    entries.append(current)
                current = line if f"@{database} " in line and "duration:" in line else None
            elif current is not None:
                current += line
        if current is not None:
            entries.append(current)
    for entry in entries:
        match = re.search(r"duration: ([\d.]+) ms\s+(?:execute [^:]*|statement): (.*)", entry, re.S)
        if match:
            statement = re.sub(r"\s+", " ", match.group(2)).split(" DETAIL:")[0].strip()
            found[statement].append(float(match.group(1)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=100_000, help="ended calls already in the database")
    parser.add_argument("--transfers", type=int, default=2, help="whole warm transfers measured")
    parser.add_argument("--slow-ms", type=float, default=4.0, help="statements this slow are listed")
    args = parser.parse_args()
    configure_logging(level="warning")

    url, drop = fresh_database("postgres")
    database = url.rsplit("/", 1)[1]
    try:
        migrate_with_roster(url)
        write_history(url, args.history)
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" SET log_min_duration_statement = {args.slow_ms:g}'))
        admin.dispose()
        log_from = SERVER_LOG.stat().st_size if SERVER_LOG.exists() else None
        with LiveKitStandIn(LIVEKIT_KEY, LIVEKIT_SECRET) as livekit, LLMStandIn() as llm, \
                gunicorn_service(url, livekit=livekit, llm=llm, livekit_key=LIVEKIT_KEY, livekit_secret=LIVEKIT_SECRET,
                                 workers=2, threads=4, extra_env={"RECONCILE_INTERVAL_SECONDS": "0"}) as served:
            before = table_stats(url)
            whole_transfers(served, args.transfers, defaultdict(list))
            time.sleep(2)  # the last callbacks and LiveKit's webhooks
            after = table_stats(url)
        slow = slow_statements(log_from, database) if log_from is not None else None
    finally:
        drop()

    print(f"## A long history: {args.transfers} whole warm transfers over {args.history:,} ended calls\n")
    print("| table | sequential scans | rows they read | index scans |")
    print("| --- | --- | --- | --- |")
    for name in sorted(after):
        scans, rows, index = (now - then for now, then in zip(after[name], before.get(name, (0, 0, 0))))
        if scans or index:
            print(f"| {name} | {scans} | {rows:,} | {index} |")
    if slow is None:
        print(f"\nPostgreSQL's log ({SERVER_LOG}) cannot be read here: slow statements not listed.")
        return
    print(f"\nStatements of {args.slow_ms:g} ms or more: {sum(len(times) for times in slow.values())}")
    for statement, times in sorted(slow.items(), key=lambda item: -sum(item[1])):
        print(f"- {len(times)}x, mean {sum(times) / len(times):.1f} ms: `{statement[:300]}`")


if __name__ == "__main__":
    main()
