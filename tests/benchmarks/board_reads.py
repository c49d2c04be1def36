"""Benchmark: what one board read and one wallboard read cost with a day of calls, statement by statement.

    .venv/bin/python -m tests.benchmarks.board_reads [--calls 2000] [--reads 30]

Needs PostgreSQL on 127.0.0.1:5432; makes a database of its own (migrated,
the demo roster loaded, dropped at the end). CALLS calls of today are
written straight into the database, as a busy day leaves them: half of them
answered and ended, half still waiting in the billing queue, each with ten
timeline events (one of them `call_queued`), then the tables analysed, as
autovacuum would have. Then READS board snapshots and READS wallboard
snapshots are read in one process, each in a read-only session of its own,
as the live pages' process reads them (app/live/readers.py), and the script
prints the median wall and thread CPU time of a read and, for each
statement, its median time at the database (from sending it to its answer)
and how many were sent. Nothing here asserts a time: it measures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from types import SimpleNamespace

from sqlalchemy import event, text

from app.database import make_engine, read_as_one
from app.supervisor import board
from tests.benchmarks import live_pages
from tests.benchmarks.call_flow import fresh_database, migrate_with_roster

EVENTS = ("call_received", "call_queued", "agent_ringing", "agent_answered", "caller_connected",
          "transcript_started", "note_1", "note_2", "note_3", "note_4")
A_DAY = [
    # Ten events a call, five seconds after it arrived.
    """INSERT INTO events (call_id, name, detail, created_at)
       SELECT c.id, e.name, '{}', c.created_at + interval '5 seconds'
       FROM calls c, unnest(CAST(:names AS text[])) AS e(name)""",
    # Queued with those events, as the service stamps it (migration 0028); every other call answered after twenty
    # seconds and over after two hundred.
    "UPDATE calls SET first_queued_at = created_at + interval '5 seconds'",
    """UPDATE calls SET status = 'completed', answered_at = created_at + interval '20 seconds',
                        ended_at = created_at + interval '200 seconds'
       WHERE mod(id, 2) = 0""",
    "ANALYZE",
]


def seed_day(url: str, calls: int) -> None:
    live_pages.seed_calls(url, calls)  # waiting in the billing queue, stamped an hour from now (today's)
    engine = make_engine(url, pooled=False)
    with engine.begin() as connection:
        for statement in A_DAY:
            connection.execute(text(statement), {"names": list(EVENTS)})
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()

    url, drop = fresh_database("postgres")
    try:
        migrate_with_roster(url)
        seed_day(url, args.calls)
        engine = make_engine(url)
        settings = SimpleNamespace(centre_timezone="UTC", service_level_seconds=20, board_calls_shown=100)
        at_database: dict[str, list[float]] = defaultdict(list)
        started: dict[int, float] = {}

        def sent(_conn, cursor, *_args) -> None:
            started[id(cursor)] = time.perf_counter()

        def answered(_conn, cursor, statement, *_args) -> None:
            at_database[" ".join(statement.split())[:100]].append((time.perf_counter() - started[id(cursor)]) * 1000)

        event.listen(engine, "before_cursor_execute", sent)
        event.listen(engine, "after_cursor_execute", answered)
        from sqlalchemy.orm import sessionmaker

        make_session = sessionmaker(engine)
        print(f"## Board reads, {args.calls} calls of today (half ended, half waiting), {args.reads} reads each\n")
        print("| read | wall ms (median) | thread CPU ms (median) |")
        print("| --- | --- | --- |")
        for name, snapshot in (("board", board.board_snapshot), ("wallboard", board.wallboard_snapshot)):
            walls, cpus = [], []
            for _ in range(args.reads + 2):  # the first two compile and warm up: not counted
                wall, cpu = time.perf_counter(), time.thread_time()
                with read_as_one(make_session()) as session:
                    snapshot(session, settings, None)
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.thread_time() - cpu) * 1000)
            print(f"| {name} | {statistics.median(walls[2:]):.1f} | {statistics.median(cpus[2:]):.1f} |")
        print("\n| statement | sent | at the database, ms (median) |")
        print("| --- | --- | --- |")
        for statement, times in sorted(at_database.items(), key=lambda item: -sum(item[1])):
            print(f"| `{statement}` | {len(times)} | {statistics.median(times):.2f} |")
        engine.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
