"""Live pages served without a worker thread per open page (docs/live-pages.md).

signal.py: what a committed step announces on PostgreSQL (NOTIFY, with the
transaction); changes.py: how the live process hears of changes (LISTEN, or
on SQLite one look at the newest event a second); topics.py: one snapshot per
page kind and subject, computed once per change and fanned out to every open
page; admission.py: who may follow what, decided by the Flask app's own
views; server.py: the ASGI app and its server.
"""
