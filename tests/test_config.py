"""Configuration is read once, typed, and every problem is named."""

from pathlib import Path

import pytest

from config import DEFAULT_DATABASE_URL, VARIABLES, ConfigError, load_settings


def test_no_environment_gives_the_embedded_default():
    settings = load_settings({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite:///") and "/instance/" in settings.database_url
    assert settings.llm_provider == "none"
    assert settings.log_format == "console"
    assert set(settings.unconfigured()) == {"twilio", "livekit", "livekit_sip", "llm"}


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {
                "PORT": "eighty",
                "DATABASE_URL": "mysql://nope",
                "LLM_PROVIDER": "claude",
                "PUBLIC_BASE_URL": "switchboard.example.com",
                "TWILIO_ACCOUNT_SID": "AC123",
                "LLM_TIMEOUT_SECONDS": "-1",
            }
        )
    message = str(raised.value)
    for name in ("PORT", "DATABASE_URL", "LLM_PROVIDER", "PUBLIC_BASE_URL", "LLM_TIMEOUT_SECONDS"):
        assert name in message
    # A half-configured Twilio names what is missing.
    assert "TWILIO_AUTH_TOKEN" in message and "TWILIO_PHONE_NUMBER" in message


def test_llm_provider_needs_its_key():
    with pytest.raises(ConfigError, match="GROQ_API_KEY: required when LLM_PROVIDER=groq"):
        load_settings({"LLM_PROVIDER": "groq"})
    settings = load_settings({"LLM_PROVIDER": "groq", "GROQ_API_KEY": "gsk_x"})
    assert settings.llm_api_key == "gsk_x"


def test_production_requires_real_integrations_and_postgres():
    with pytest.raises(ConfigError) as raised:
        load_settings({"APP_ENV": "production"})
    message = str(raised.value)
    for name in ("SECRET_KEY", "DATABASE_URL", "TWILIO_ACCOUNT_SID", "LIVEKIT_URL", "LIVEKIT_SIP_HOST"):
        assert name in message


def test_values_are_typed_and_normalised():
    settings = load_settings(
        {
            "PORT": "9000",
            "DEBUG": "true",
            "DATABASE_URL": "postgres://u:p@db/switchboard",
            "PUBLIC_BASE_URL": "https://abc.ngrok.app/",
            "LIVEKIT_ALLOWED_ADDRESSES": "54.172.60.0/30, 54.244.51.0/30",
            "APP_ENV": "test",
        }
    )
    assert settings.port == 9000 and settings.debug is True
    assert settings.database_url == "postgresql+psycopg://u:p@db/switchboard"
    assert settings.public_base_url == "https://abc.ngrok.app"
    assert settings.livekit_allowed_addresses == ("54.172.60.0/30", "54.244.51.0/30")
    assert settings.log_format == "json"
    assert "p" not in settings.secret_values()  # too short to mask safely


def test_secret_values_cover_every_secret():
    settings = load_settings(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
            "TWILIO_AUTH_TOKEN": "twilio-token-value",
            "TWILIO_PHONE_NUMBER": "+15550001111",
            "OPENAI_API_KEY": "sk-openai-value",
            "LLM_PROVIDER": "openai",
            "DATABASE_URL": "postgresql://u:db-password@db/x",
        }
    )
    assert {"twilio-token-value", "sk-openai-value", "db-password"} <= set(settings.secret_values())


def test_readme_documents_every_variable():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [name for name in VARIABLES if f"`{name}`" not in readme]
    assert missing == []


def test_dotenv_is_read_in_development_and_ignored_in_production(tmp_path, monkeypatch):
    import config

    (tmp_path / ".env").write_text("PORT=9123\nLLM_PROVIDER=groq\nGROQ_API_KEY=gsk_from_file\n")
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(config.os, "environ", {"PORT": "9000"})
    development = config.load_settings()
    assert development.port == 9000  # the real environment wins
    assert development.llm_provider == "groq" and development.groq_api_key == "gsk_from_file"
    monkeypatch.setattr(config.os, "environ", {"APP_ENV": "production"})
    with pytest.raises(ConfigError) as raised:
        config.load_settings()
    assert "GROQ_API_KEY" not in str(raised.value) and "SECRET_KEY" in str(raised.value)


PRODUCTION = {
    "APP_ENV": "production", "DATABASE_URL": "postgresql://u:p@db/switchboard",
    "SECRET_KEY": "k" * 48, "PUBLIC_BASE_URL": "https://switchboard.example.com",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "TWILIO_PHONE_NUMBER": "+15550100000",
    "LIVEKIT_URL": "wss://x.livekit.cloud", "LIVEKIT_API_KEY": "APIx", "LIVEKIT_API_SECRET": "s" * 32,
    "LIVEKIT_SIP_HOST": "x.sip.livekit.cloud", "LIVEKIT_SIP_USERNAME": "switchboard", "LIVEKIT_SIP_PASSWORD": "p" * 16,
}


def test_a_correct_production_environment_is_accepted():
    assert load_settings(dict(PRODUCTION)).production


@pytest.mark.parametrize(("changes", "named"), [
    ({"PUBLIC_BASE_URL": "http://switchboard.example.com"}, "PUBLIC_BASE_URL: http://switchboard.example.com is not https"),
    ({"PUBLIC_BASE_URL": "https://localhost:8000"}, "PUBLIC_BASE_URL: https://localhost:8000 is this machine"),
    ({"SECRET_KEY": "x"}, "SECRET_KEY: at least 32 characters in production"),
    ({"PORT": "99999"}, "PORT: 99999 is not a TCP port"),
])
def test_production_refuses_settings_that_would_fail_later(changes, named):
    with pytest.raises(ConfigError) as raised:
        load_settings({**PRODUCTION, **changes})
    assert named in str(raised.value)


def test_a_port_out_of_range_is_refused_everywhere():
    with pytest.raises(ConfigError, match="PORT: 0 is not a TCP port"):
        load_settings({"PORT": "0"})


def test_production_refuses_to_start_beside_a_dotenv_file(tmp_path, monkeypatch):
    import config

    (tmp_path / ".env").write_text("TWILIO_AUTH_TOKEN=from-a-developer-file\n")
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    with pytest.raises(ConfigError) as raised:
        config.load_settings(dict(PRODUCTION))
    assert ".env:" in str(raised.value) and "from-a-developer-file" not in str(raised.value)


def test_transcription_is_on_off_or_some_queues():
    assert load_settings({}).transcribes_queue(None)
    off = load_settings({"TRANSCRIPTION": "off"})
    assert not off.transcribes_every_call and not off.transcribes_queue("billing")
    some = load_settings({"TRANSCRIPTION": "Billing, technical"})
    assert some.transcribes_queue("billing") and not some.transcribes_queue("sales") and not some.transcribes_queue(None)
    with pytest.raises(ConfigError, match="TRANSCRIPTION"):
        load_settings({"TRANSCRIPTION": "on,billing"})


def test_the_flask_cli_in_production_refuses_to_run_beside_a_dotenv_file(tmp_path):
    import shutil
    import subprocess
    import sys

    import config

    # A copy of the project with a developer's .env in it; the flask CLI loads .env by itself.
    copy = tmp_path / "switchboard"
    shutil.copytree(config.PROJECT_ROOT, copy, ignore=shutil.ignore_patterns(
        ".venv", "node_modules", ".git", "instance", "__pycache__", "*.png", "vendor"))
    (copy / ".env").write_text("TWILIO_AUTH_TOKEN=from-a-developer-file\n")
    environment = {"PATH": "/usr/bin:/bin", **{k: v for k, v in PRODUCTION.items() if not k.startswith("TWILIO")}}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "current"], cwd=copy,
                            env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert ".env:" in result.stderr and "production takes its settings from the environment only" in result.stderr
    assert "from-a-developer-file" not in result.stderr + result.stdout


def test_a_summary_deadline_past_what_a_greeted_target_should_wait_is_refused():
    with pytest.raises(ConfigError, match="SUMMARY_DEADLINE_SECONDS: the target waits this long after the greeting"):
        load_settings({"SUMMARY_DEADLINE_SECONDS": "45"}, dotenv=False)
    assert load_settings({"SUMMARY_DEADLINE_SECONDS": "15"}, dotenv=False).summary_deadline_seconds == 15


def test_the_centre_timezone_is_an_iana_name():
    assert load_settings({}).centre_timezone == "UTC"
    assert load_settings({"CENTRE_TIMEZONE": " Europe/London "}).centre_timezone == "Europe/London"
    for bad in ("Mars/Olympus_Mons", "GMT+1 ", "../../etc/passwd"):
        with pytest.raises(ConfigError, match="CENTRE_TIMEZONE: expected an IANA time zone name"):
            load_settings({"CENTRE_TIMEZONE": bad})


def test_a_reconciler_pass_must_end_before_the_next_is_due():
    with pytest.raises(ConfigError, match="RECONCILE_PASS_SECONDS: must be less than RECONCILE_INTERVAL_SECONDS"):
        load_settings({"RECONCILE_INTERVAL_SECONDS": "60", "RECONCILE_PASS_SECONDS": "60"})
    assert load_settings({}).reconcile_pass_seconds == 30
    assert load_settings({"RECONCILE_INTERVAL_SECONDS": "20"}).reconcile_pass_seconds == 10  # half, when shorter
    assert load_settings({"RECONCILE_INTERVAL_SECONDS": "0", "RECONCILE_PASS_SECONDS": "90"}).reconcile_pass_seconds == 90


@pytest.mark.parametrize("name", ["LOGIN_FAILURES_PER_ADDRESS", "LOGIN_FAILURES_PER_USER",
                                  "LOGIN_FAILURE_WINDOW_SECONDS"])
def test_the_sign_in_limits_are_at_least_one(name):
    with pytest.raises(ConfigError, match=f"{name}: must be at least 1"):
        load_settings({name: "0"}, dotenv=False)
    assert getattr(load_settings({name: "7"}, dotenv=False), name.lower()) == 7


def test_a_captcha_provider_needs_its_keys_and_keys_need_a_provider():
    with pytest.raises(ConfigError) as error:
        load_settings({"WEB_CALL_CAPTCHA": "turnstile", "WEB_CALL_CAPTCHA_SITE_KEY": "site-key"}, dotenv=False)
    assert "WEB_CALL_CAPTCHA_SECRET: needed with WEB_CALL_CAPTCHA=turnstile" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_settings({"WEB_CALL_CAPTCHA_SECRET": "secret", "WEB_CALL_CAPTCHA_VERIFY_URL": "https://verify.example"},
                      dotenv=False)
    assert ("WEB_CALL_CAPTCHA_SECRET, WEB_CALL_CAPTCHA_VERIFY_URL: set WEB_CALL_CAPTCHA to the provider they are for"
            in str(error.value))
    with pytest.raises(ConfigError) as error:
        load_settings({"WEB_CALL_CAPTCHA": "captchaco"}, dotenv=False)
    assert "WEB_CALL_CAPTCHA" in str(error.value) and "turnstile, hcaptcha, recaptcha, none" in str(error.value)
    settings = load_settings({"WEB_CALL_CAPTCHA": "HCaptcha", "WEB_CALL_CAPTCHA_SITE_KEY": "site-key",
                              "WEB_CALL_CAPTCHA_SECRET": "secret"}, dotenv=False)
    assert settings.web_call_captcha == "hcaptcha" and "secret" in settings.secret_values()
    assert load_settings({"WEB_CALL_CAPTCHA": "none"}, dotenv=False).web_call_captcha == "none"
