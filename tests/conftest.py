"""Shared fixtures: the database the suite runs on, the app, its client and CLI runner.

The suite runs on SQLite by default and on PostgreSQL with
TEST_DATABASE=postgres: then a fresh database is created on the server named
by TEST_POSTGRES_URL (default: the local server) and dropped at the end.
Tests commit for real, as the service does; every table is emptied after
each test, which also works for tests that run the service in other threads
or processes.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

from app import create_app
from app.database import Base, alembic_config, make_engine
from config import Settings

# The browser fixtures (live server, Chromium) live in their own module.
pytest_plugins = ["tests.browser_support"]

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite")
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

TWILIO_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TWILIO_AUTH_TOKEN = "test-twilio-auth-token-0123456789"
PUBLIC_BASE_URL = "https://switchboard.example.com"


def _create_postgres_database() -> tuple[str, callable]:
    admin_url = make_url(TEST_POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"switchboard_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """A migrated, empty database for the whole run."""
    from alembic import command

    if TEST_DATABASE == "postgres":
        url, drop = _create_postgres_database()
    elif TEST_DATABASE == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('db') / 'switchboard.db'}", (lambda: None)
    else:
        raise pytest.UsageError("TEST_DATABASE must be sqlite or postgres")
    command.upgrade(alembic_config(url), "head")
    yield url
    drop()


# Connections opened to the database and not yet closed, whoever opened them:
# a test must close every one it opened (tests/conftest.leaves_nothing_behind).
_OPEN_CONNECTIONS: dict[int, str] = {}


@event.listens_for(Pool, "connect")
def _opened(dbapi_connection, _record) -> None:
    _OPEN_CONNECTIONS[id(dbapi_connection)] = threading.current_thread().name


@event.listens_for(Pool, "close")
def _closed(dbapi_connection, _record) -> None:
    _OPEN_CONNECTIONS.pop(id(dbapi_connection), None)


@event.listens_for(Pool, "close_detached")
def _closed_detached(dbapi_connection) -> None:
    _OPEN_CONNECTIONS.pop(id(dbapi_connection), None)


# How long a test's threads get, after its fixtures are torn down, to finish.
LEFTOVER_GRACE_SECONDS = 5.0


@pytest.fixture(autouse=True)
def leaves_nothing_behind():
    """Fails the test that leaves a thread running or a database connection open once its fixtures are gone.

    Autouse and function-scoped, so it is set up before, and torn down after,
    every other fixture of the test: whatever the app, the stand-ins and the
    servers started must have stopped by then. Background work that outlives
    its test writes into the next one's database (and blocks its clean-up).
    """
    threads_before = set(threading.enumerate())
    connections_before = set(_OPEN_CONNECTIONS)
    yield
    give_up = time.monotonic() + LEFTOVER_GRACE_SECONDS
    started = [thread for thread in threading.enumerate() if thread not in threads_before]
    for thread in started:
        thread.join(max(0.0, give_up - time.monotonic()))
    running = sorted(thread.name for thread in started if thread.is_alive())
    still_open = sorted(name for key, name in list(_OPEN_CONNECTIONS.items()) if key not in connections_before)
    assert not running, f"the test left threads running: {running}"
    assert not still_open, f"the test left database connections open (opened by threads {still_open})"


@pytest.fixture(scope="session")
def _cleanup_engine(database_url):
    # Unpooled: its connection is closed after each clean-up, so none is left open between tests.
    engine = make_engine(database_url, pooled=False)
    yield engine
    engine.dispose()


JOB_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs", "procrastinate_workers")


@pytest.fixture
def clean_database(database_url, _cleanup_engine):
    """The run's database, emptied again after the test."""
    yield database_url
    engine = _cleanup_engine
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # The job queue's tables (migration 0007) are procrastinate's, not the models'.
            names = ", ".join([f'"{table.name}"' for table in Base.metadata.sorted_tables] + list(JOB_TABLES))
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def settings(clean_database) -> Settings:
    """Settings of a configured service (Twilio set, LiveKit and LLM off unless a test adds them)."""
    return Settings(
        app_env="test",
        secret_key="test-secret-key-not-for-production",
        database_url=clean_database,
        public_base_url=PUBLIC_BASE_URL,
        log_format="json",
        twilio_account_sid=TWILIO_ACCOUNT_SID,
        twilio_auth_token=TWILIO_AUTH_TOKEN,
        twilio_phone_number="+15550100000",
    )


@pytest.fixture
def make_app(clean_database):
    """Build apps from settings and close them afterwards: background work waited for, gateways and engines closed.

    It depends on the database fixture so that the apps are closed before the
    database is emptied: a summary still being written would otherwise hold
    its rows while the tables are truncated.
    """
    apps = []

    def build(settings: Settings, **changes):
        app = create_app(replace(settings, **changes) if changes else settings)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    from app import close_app

    stopped = [close_app(app) for app in apps]
    assert all(stopped), "an app's background work was still running after its test"


@pytest.fixture
def app(make_app, settings):
    return make_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


LIVEKIT_API_KEY = "APIswitchboardtest"
LIVEKIT_API_SECRET = "livekit-test-secret-0123456789abcdef"
LIVEKIT_SIP_PASSWORD = "sip-trunk-password-123"


@pytest.fixture
def livekit():
    """A loopback LiveKit server speaking Twirp/protobuf."""
    from app.sandbox.livekit_server import LiveKitStandIn

    with LiveKitStandIn(LIVEKIT_API_KEY, LIVEKIT_API_SECRET) as stand_in:
        yield stand_in


@pytest.fixture
def llm():
    """A loopback OpenAI-compatible server."""
    from app.sandbox.llm_server import LLMStandIn

    with LLMStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def centre_settings(settings, livekit, llm) -> Settings:
    """A fully configured service pointed at the stand-ins."""
    return replace(
        settings,
        livekit_url=livekit.url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        livekit_sip_host="switchboard-test.sip.livekit.cloud",
        livekit_sip_username="switchboard",
        livekit_sip_password=LIVEKIT_SIP_PASSWORD,
        # Twilio's North America (Virginia) signalling range, where the simulator's INVITEs come from.
        livekit_allowed_addresses=("54.172.60.0/23",),
        llm_provider="openai",
        openai_api_key="sk-test-openai-key-0123456789",
        llm_base_url=llm.base_url,
        llm_timeout_seconds=3.0,
        summary_deadline_seconds=1.0,
        max_queue_wait_seconds=60,
    )


def sandbox_seed() -> int:
    """The seed that orders callbacks fired side by side: SANDBOX_SEED to repeat a run, else a new one."""
    import random

    seed = int(os.environ.get("SANDBOX_SEED") or random.randrange(1_000_000))
    # Shown with a failing test's captured output: SANDBOX_SEED=<seed> runs it again the same way.
    print(f"SANDBOX_SEED={seed}")
    return seed


@pytest.fixture
def centre(make_app, centre_settings, livekit, llm):
    """The whole contact centre: the app with the demo roster, Twilio simulated, LiveKit and LLM on loopback."""
    import responses

    from app.sandbox.call_centre import CallCentre

    app = make_app(centre_settings)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        centre = CallCentre(app, PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, livekit=livekit, llm=llm,
                            seed=sandbox_seed())
        centre.network.install(rsps)
        # Subscribers of the service's event webhooks listen on loopback, as real HTTP servers.
        rsps.add_passthru("http://127.0.0.1")
        centre.load_roster()
        yield centre
        centre.close()


def _signed_post(client, path, form, token=TWILIO_AUTH_TOKEN, headers=None):
    from app.sandbox.signing import signed_headers

    url = PUBLIC_BASE_URL + path
    return client.post(path, data=form, headers={**signed_headers(token, url, form), **(headers or {})})


@pytest.fixture
def signed_post():
    """POST a form to a test client as Twilio would: signed for PUBLIC_BASE_URL + path (with TOKEN)."""
    return _signed_post


@pytest.fixture
def api_headers():
    """Authorization headers with a new API token of APP's database (read and act unless SCOPES say otherwise):
    api_headers(app), api_headers(app, "wallboard", scopes=("read",))."""
    from app.auth.service import create_api_token
    from app.db import session_scope

    def headers(app, name="crm", scopes=("read", "act")):
        with session_scope(app) as session:
            return {"Authorization": f"Bearer {create_api_token(session, name, scopes)}"}

    return headers


@pytest.fixture
def outside_allowed(centre):
    """Outside transfers on: numbers in the UK, SIP hosts under partner.example."""
    centre.app.config["SETTINGS"] = replace(centre.app.config["SETTINGS"],
                                            outside_transfer_allow=("+44", "partner.example"))
