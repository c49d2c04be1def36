"""The job settings and commands answer in words where they cannot work."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from tests.conftest import TEST_DATABASE


def test_separate_job_workers_need_postgresql_and_sane_numbers():
    with pytest.raises(ConfigError) as refused:
        load_settings({"JOBS_IN_PROCESS": "false", "JOB_CONCURRENCY": "0", "JOB_STALLED_AFTER_SECONDS": "1"})
    problems = str(refused.value)
    assert "JOBS_IN_PROCESS: must be true on the embedded SQLite database" in problems
    assert "JOB_CONCURRENCY: must be at least 1" in problems
    assert "JOB_STALLED_AFTER_SECONDS: must be at least 2" in problems
    settings = load_settings({"DATABASE_URL": "postgresql+psycopg://db.example/switchboard", "JOBS_IN_PROCESS": "no"})
    assert settings.jobs_in_process is False


@pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the embedded database's jobs live in each process's memory")
def test_a_separate_worker_on_the_embedded_database_is_refused_in_words(app):
    result = app.test_cli_runner().invoke(args=["jobs", "work"])
    assert result.exit_code != 0
    assert "a separate worker needs DATABASE_URL to be PostgreSQL" in result.output


@pytest.mark.skipif(TEST_DATABASE != "postgres", reason="the job queue's tables are PostgreSQL's")
def test_jobs_list_shows_what_is_queued(make_app, settings):
    from dataclasses import replace

    from app.jobs.setup import jobs_of

    app = make_app(replace(settings, jobs_in_process=False))  # nobody works it: it stays queued
    job_id = jobs_of(app).defer("summarise", transfer_id=4242)
    result = app.test_cli_runner().invoke(args=["jobs", "list"])
    assert result.exit_code == 0, result.output
    assert f"{job_id}\ttodo\tsummarise\t" in result.output
