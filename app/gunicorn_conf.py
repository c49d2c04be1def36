"""gunicorn settings for webhooks: `gunicorn -c app/gunicorn_conf.py wsgi:app`.

Twilio gives a webhook 15 seconds, so requests are short: a few workers with
threads suit I/O-bound handlers. Workers and threads come from
WEB_CONCURRENCY and WEB_THREADS; logs are structured like the application's,
which writes the one line per request (`request_served`, with its costs)
that gunicorn's access log would otherwise repeat.
"""

from gunicorn.glogging import Logger

from app.logs import logging_dict_config
from config import exit_on_config_error, load_settings

with exit_on_config_error():
    _settings = load_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.web_concurrency
threads = _settings.web_threads
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
forwarded_allow_ips = "*" if _settings.trusted_proxy_hops else "127.0.0.1"
logconfig_dict = logging_dict_config(_settings.log_format, _settings.log_level, _settings.secret_values())


class ServiceLogger(Logger):
    """gunicorn's logger without its access line, not even built: the service writes its own."""

    access_log_enabled = False


logger_class = ServiceLogger


def post_worker_init(worker) -> None:
    """With JOBS_IN_PROCESS (the default), each worker also works jobs and runs the timers (docs/jobs.md); then
    the worker's startup objects are frozen out of the garbage collector's full collections (app/process.py)."""
    if _settings.jobs_in_process:
        from app.jobs.setup import start_jobs

        start_jobs(worker.wsgi)
    from app.process import settle_startup_objects

    settle_startup_objects()
