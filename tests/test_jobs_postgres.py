"""The job engine on PostgreSQL, with real worker processes (`flask jobs work`) on one database.

- Two instances working one queue run every job once, and every timer tick once.
- Jobs queued while no worker runs are run by the next worker that starts.
- A worker killed (SIGKILL) while writing a summary does not lose it: the
  other worker sees its heart stop and runs the job again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import TEST_DATABASE

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.load,
    pytest.mark.skipif(TEST_DATABASE != "postgres", reason="jobs are kept in PostgreSQL; SQLite keeps them in memory"),
]

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """One `flask jobs work` process, its output kept in a file."""

    def __init__(self, tmp_path: Path, name: str, database_url: str, **env: str) -> None:
        self.log = tmp_path / f"{name}.log"
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "LOG_FORMAT": "json",
            "RECONCILE_INTERVAL_SECONDS": "0",
            "JOB_STALLED_AFTER_SECONDS": "2",
            **env,
        }
        with self.log.open("w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "work"],
                                            cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def _until(condition, seconds: float = 30.0, what: str = "") -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"waited {seconds:g} s for {what}")
        time.sleep(0.05)


def _scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def _rows(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(text(sql), params).all()


@pytest.fixture
def workers(tmp_path, clean_database):
    started: list[Worker] = []

    def start(name: str, **env: str) -> Worker:
        worker = Worker(tmp_path, name, clean_database, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def queue_app(make_app, settings):
    """An app that only queues jobs: its process works none (JOBS_IN_PROCESS false)."""
    return make_app(replace(settings, jobs_in_process=False))


def test_two_instances_run_each_job_once(queue_app, workers):
    from app.jobs.setup import jobs_of

    engine = queue_app.extensions["db_engine"]
    first, second = workers("first"), workers("second")
    _until(lambda: _scalar(engine, "SELECT count(*) FROM procrastinate_workers") == 2, what="both workers")
    runtime = jobs_of(queue_app)
    # Summaries of transfers that do not exist: each job looks, finds nothing to write, and ends.
    for transfer_id in range(1000, 1060):
        runtime.defer("summarise", lock=f"summary-{transfer_id}", transfer_id=transfer_id)
    _until(lambda: _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded' "
                                   "AND task_name = 'summarise'") == 60, what="60 jobs done")
    starts = _rows(engine, "SELECT job_id, count(*) FROM procrastinate_events e JOIN procrastinate_jobs j "
                           "ON j.id = e.job_id WHERE e.type = 'started' AND j.task_name = 'summarise' "
                           "GROUP BY job_id")
    assert len(starts) == 60 and all(count == 1 for _job, count in starts)
    ran = Counter()
    for worker in (first, second):
        for line in worker.output().splitlines():
            if '"summary_job_started"' in line:
                ran[worker.log.stem] += 1
    assert sum(ran.values()) == 60, ran
    assert ran["first"] > 0 and ran["second"] > 0, ran  # both took jobs from the one queue


def test_two_instances_fire_each_timer_tick_once(queue_app, workers):
    engine = queue_app.extensions["db_engine"]
    first = workers("first", RECONCILE_INTERVAL_SECONDS="1")
    second = workers("second", RECONCILE_INTERVAL_SECONDS="1")
    _until(lambda: _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'reconcile' "
                                   "AND status = 'succeeded'") >= 4, what="four reconciler ticks")
    first.stop()
    second.stop()
    ticks = _scalar(engine, "SELECT count(DISTINCT args->>'timestamp') FROM procrastinate_jobs "
                            "WHERE task_name = 'reconcile'")
    jobs = _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'reconcile' "
                           "AND args ? 'timestamp'")  # the timer's, not the start-up pass
    passes = sum(worker.output().count('"reconcile_skipped"') for worker in (first, second))
    # One job per tick whichever instance deferred it first; one pass per job, by whichever instance took it.
    assert jobs == ticks
    assert passes == _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'reconcile' "
                                     "AND status = 'succeeded'")


def test_jobs_queued_while_no_worker_runs_are_run_by_the_next_to_start(queue_app, workers):
    from app.jobs.setup import jobs_of

    engine = queue_app.extensions["db_engine"]
    for transfer_id in range(2000, 2005):
        jobs_of(queue_app).defer("summarise", transfer_id=transfer_id)
    time.sleep(0.5)
    assert _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'") == 5
    workers("after_restart")
    _until(lambda: _scalar(engine, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded' "
                                   "AND task_name = 'summarise'") == 5, what="the five queued jobs")


def test_a_worker_killed_while_writing_a_summary_does_not_lose_it(make_app, centre_settings, livekit, llm,
                                                                  workers):
    """The first worker is killed while the LLM is thinking; the second sees its heart stop, runs the job
    again, and the transfer gets the LLM's summary (not the fallback)."""
    import responses

    from app.sandbox.call_centre import CallCentre
    from app.sandbox.scenarios import BOB, connected_call
    from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
    from tests.transfer_helpers import transfer_row

    app = make_app(replace(centre_settings, jobs_in_process=False, summary_deadline_seconds=20))
    engine = app.extensions["db_engine"]
    llm_env = {"LLM_PROVIDER": "openai", "OPENAI_API_KEY": centre_settings.openai_api_key,
               "LLM_BASE_URL": llm.base_url, "LLM_TIMEOUT_SECONDS": "20"}
    llm.mode = "held"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        centre = CallCentre(app, PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, livekit=livekit, llm=llm)
        centre.network.install(rsps)
        centre.load_roster()
        try:
            _caller, alice = connected_call(centre.network, centre.number)
            alice.press_star()
            alice.press("2102#")
            assert centre.network.calls_to(BOB)  # the consult has started: its summary job is queued
            doomed = workers("doomed", **llm_env)
            _until(lambda: len(llm.requests) == 1, what="the first worker to ask the LLM")
            doomed.kill()  # mid-summary
            llm.released.set()  # the LLM answers from now on
            workers("survivor", **llm_env)
            _until(lambda: transfer_row(centre).summary_source is not None, seconds=60,
                   what="the survivor to write the summary")
        finally:
            centre.close()
    assert transfer_row(centre).summary_source == "llm"
    assert len(llm.requests) == 2  # asked again by the survivor
    starts = _scalar(engine, "SELECT count(*) FROM procrastinate_events e JOIN procrastinate_jobs j "
                             "ON j.id = e.job_id WHERE j.task_name = 'summarise' AND e.type = 'started'")
    assert starts == 2
