"""Loaded by Python at start-up in the service's gunicorn workers when tests/benchmarks/webhook_calls.py puts this
folder on their PYTHONPATH, and only then: counts the Python function calls of every request under cProfile.

Each request to the Flask app runs under its own `cProfile.Profile`; after a path's first SKIP requests in the
worker (a step's first run compiles its statements and loads its templates), its total of calls is kept. At the
worker's exit, one line per path goes to WEBHOOK_CALLS_OUT.<pid>: path, requests counted, total calls.
"""

import atexit
import cProfile
import os
import pstats
import threading
from collections import Counter, defaultdict

SKIP = 3

if os.environ.get("WEBHOOK_CALLS_OUT"):
    import flask

    _seen: Counter = Counter()
    _calls: dict[str, list[int]] = defaultdict(list)
    _lock = threading.Lock()
    _served = flask.Flask.__call__

    def _counted(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        profile = cProfile.Profile()
        profile.enable()
        try:
            body = _served(self, environ, start_response)
            data = list(body)  # the body's iteration and close are the request's too
            if hasattr(body, "close"):
                body.close()
        finally:
            profile.disable()
        with _lock:
            _seen[path] += 1
            if _seen[path] > SKIP:
                _calls[path].append(pstats.Stats(profile).total_calls)
        return data

    def _write() -> None:
        with open(f"{os.environ['WEBHOOK_CALLS_OUT']}.{os.getpid()}", "w") as out:
            for path, totals in sorted(_calls.items()):
                out.write(f"{path}\t{len(totals)}\t{sum(totals)}\n")

    flask.Flask.__call__ = _counted
    atexit.register(_write)
