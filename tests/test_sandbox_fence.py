"""The production service never loads the sandbox (the stand-ins of Twilio, LiveKit and the LLM)."""

import subprocess
import sys

from config import PROJECT_ROOT

CHECK = """
import sys
{setup}
loaded = sorted(m for m in sys.modules if m == "app.sandbox" or m.startswith("app.sandbox."))
print(",".join(loaded) or "none")
"""


def _loaded_after(setup: str) -> str:
    result = subprocess.run([sys.executable, "-c", CHECK.format(setup=setup)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "APP_ENV": "test", "SECRET_KEY": "fence-secret-key",
                                 "DATABASE_URL": "sqlite://", "LOG_LEVEL": "error"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_create_app_loads_no_sandbox_module():
    assert _loaded_after("from app import create_app\ncreate_app()") == "none"


def test_the_wsgi_entry_point_loads_no_sandbox_module():
    assert _loaded_after("import wsgi") == "none"
