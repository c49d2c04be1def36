"""What can be checked of the Dockerfile and compose.yaml without a Docker engine: their stages, services and
profiles as written. Nothing here builds or runs an image."""

import re

import yaml

from config import PROJECT_ROOT


def _stages() -> dict[str, list[str]]:
    """The Dockerfile's stages by name, each its instruction lines (continuations joined)."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = re.match(r"FROM \S+ AS (\S+)$", line, re.IGNORECASE)
        if found:
            current = found.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def test_the_production_image_leaves_the_sandbox_out_and_only_the_demo_image_has_it():
    stages = _stages()
    assert list(stages)[-1] == "production"  # the default target of `docker build`
    assert "RUN rm -rf app/sandbox" in stages["code"]
    assert "COPY --from=code /src/ ./" in stages["base"]
    assert stages["production"][0] == "FROM base AS production" and stages["demo"][0] == "FROM base AS demo"
    copies_sandbox = [name for name, lines in stages.items()
                      if any(line.startswith("COPY") and "app/sandbox" in line for line in lines)]
    assert copies_sandbox == ["demo"]
    assert not any("COPY . ." in line for name, lines in stages.items() if name != "code" for line in lines)
    assert stages["demo"][-1] == 'CMD ["flask", "--app", "wsgi", "demo", "--live", "--port", "8000"]'
    assert stages["production"][-1] == 'CMD ["gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"]'


def test_compose_has_a_demo_profile_apart_from_the_production_services():
    services = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())["services"]
    profiles = {name: service.get("profiles") for name, service in services.items()}
    assert profiles == {"demo": ["demo"], "db": ["production"], "redis": ["production"],
                        "migrate": ["production"], "app": ["production"], "live": ["production"]}
    demo = services["demo"]
    assert demo["build"] == {"context": ".", "target": "demo"} and demo["ports"] == ["8000:8000"]
    assert "environment" not in demo  # no account, no setting: the embedded SQLite default
    assert services["migrate"]["build"] == {"context": ".", "target": "production"}
    # The live pages' process runs the production image's own command, `flask live`, beside the app.
    assert services["live"]["image"] == services["app"]["image"]
    assert services["live"]["command"][:4] == ["flask", "--app", "wsgi", "live"]
    # Compose reads every profile's variables before choosing services: none may be demanded with ${VAR:?}.
    lines = (PROJECT_ROOT / "compose.yaml").read_text().splitlines()
    assert not [line for line in lines if ":?" in line and not line.lstrip().startswith("#")]
