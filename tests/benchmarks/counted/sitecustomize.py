"""Loaded by Python at start-up in the service's gunicorn workers when tests/benchmarks/webhook_calls.py puts this
folder on their PYTHONPATH, and only then: counts the Python function calls of every request under cProfile.

Each request to the Flask app runs under its own `cProfile.Profile`; after a path's first SKIP requests in the
worker (a step's first run compiles its statements and loads its templates), its total of calls is kept. At the
worker's exit, one line per path goes to WEBHOOK_CALLS_OUT.<pid>: path, requests counted, total calls.

With WEBHOOK_CALLS_CHARGE (paths, comma-separated), the requests of those paths are traced instead
(`sys.setprofile`, which sees the same calls cProfile counts): each call, the library's and the C functions'
included, is charged to the nearest function of the service's own (app/) on the stack, so a library's work
shows under the service's function that asked for it. Their lines go to WEBHOOK_CALLS_OUT.<pid>.charged:
path, requests, function, calls.
"""

import atexit
import cProfile
import os
import pstats
import sys
import threading
from collections import Counter, defaultdict

SKIP = 3

if os.environ.get("WEBHOOK_CALLS_OUT"):
    import flask

    _seen: Counter = Counter()
    _calls: dict[str, list[int]] = defaultdict(list)
    _charged: dict[str, Counter] = defaultdict(Counter)
    _charged_requests: Counter = Counter()
    _lock = threading.Lock()
    _served = flask.Flask.__call__
    _traced = {path for path in os.environ.get("WEBHOOK_CALLS_CHARGE", "").split(",") if path}
    _own = os.sep + "app" + os.sep

    def _served_whole(app, environ, start_response) -> list:
        body = _served(app, environ, start_response)
        data = list(body)  # the body's iteration and close are the request's too
        if hasattr(body, "close"):
            body.close()
        return data

    def _charge_to_own(counts: Counter):
        def tracer(frame, event, _arg) -> None:
            if event not in ("call", "c_call"):
                return
            own = frame
            while own is not None and _own not in own.f_code.co_filename:
                own = own.f_back
            name = own.f_code.co_filename.rsplit(_own, 1)[1] + ":" + own.f_code.co_name if own else "(outside app)"
            counts[name] += 1
        return tracer

    def _counted(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        with _lock:
            _seen[path] += 1
            kept = _seen[path] > SKIP
        if kept and path in _traced:
            counts: Counter = Counter()
            sys.setprofile(_charge_to_own(counts))
            try:
                data = _served_whole(self, environ, start_response)
            finally:
                sys.setprofile(None)
            with _lock:
                _charged[path].update(counts)
                _charged_requests[path] += 1
                _calls[path].append(sum(counts.values()))
            return data
        profile = cProfile.Profile()
        profile.enable()
        try:
            data = _served_whole(self, environ, start_response)
        finally:
            profile.disable()
        if kept:
            with _lock:
                _calls[path].append(pstats.Stats(profile).total_calls)
        return data

    def _write() -> None:
        with open(f"{os.environ['WEBHOOK_CALLS_OUT']}.{os.getpid()}", "w") as out:
            for path, totals in sorted(_calls.items()):
                out.write(f"{path}\t{len(totals)}\t{sum(totals)}\n")
        if _charged:
            with open(f"{os.environ['WEBHOOK_CALLS_OUT']}.{os.getpid()}.charged", "w") as out:
                for path, counts in sorted(_charged.items()):
                    for function, calls in counts.items():
                        out.write(f"{path}\t{_charged_requests[path]}\t{function}\t{calls}\n")

    flask.Flask.__call__ = _counted
    atexit.register(_write)
