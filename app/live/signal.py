"""What a step changed, announced to the live process by PostgreSQL itself when the step commits.

On PostgreSQL a trigger on each table the live pages show (calls, legs,
transfers, agents, timeline events, transcript lines; migration 0024) sends
`pg_notify('switchboard_live', '<topic>')` for every row a statement
inserts, updates or deletes: `call:<id>` and `agent:<id>` for what the row
belongs to, `board` for a timeline event of no call. PostgreSQL delivers a
notification only when its transaction commits (and drops it on rollback),
sends a topic named several times in one transaction once, and delivers to
every listener on the server, so a live page never shows what was rolled
back and every instance of the live process hears every change, whichever
process or host made it, through the ORM or not. A step pays no round trip
for it. `all` is what the live process itself says when it has missed
notifications (its connection was lost).

SQLite has no NOTIFY: there the live process looks at the newest event id
once a second (changes.py).
"""

from __future__ import annotations

CHANNEL = "switchboard_live"
EVERYTHING = "all"
ANYTHING_ELSE = "board"
