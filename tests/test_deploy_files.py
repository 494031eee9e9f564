"""The deployment files: docker-compose.yml, the Dockerfile and deploy/nginx.conf.

No Docker engine runs here, so nothing is built or started in containers. What is checked:
the compose file is valid for Debian's ``docker-compose`` (v1.29, which validates without an
engine) and a broken copy is not; the three files agree with each other and with the code
(every ``SIGNBOT_*`` variable is a real setting, the proxy reaches the replicas on the port
the image listens on); and the image's command and health check work when run as the image
runs them, without Docker.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from bot import migrations
from bot.config import Settings
from tests.support.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NGINX = ROOT / "deploy" / "nginx.conf"

DATA_SERVICES = {"postgres", "redis", "minio"}


# ------------------------------------------------------------------------- docker-compose


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        reason = (
            "docker-compose is not installed (apt-get install docker-compose); "
            "it validates the compose file without a Docker engine"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f PATH config -q`` with none of the file's variables set: the
    defaults alone must make a valid file."""
    env = {k: v for k in ("PATH", "HOME", "LANG") if (v := os.environ.get(k)) is not None}
    return subprocess.run(
        [_docker_compose(), "-f", str(path), "config", "-q"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid() -> None:
    done = _validate(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    # Every ${VAR} has a default: nothing needs to be exported for a local try (or for CI).
    assert "is not set" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("    image: postgres:16-alpine", "    imagee: postgres:16-alpine", "imagee"),
        ("condition: service_completed_successfully", "condition: service_done", "condition"),
    ],
    ids=["unknown-key", "bad-depends-on-condition"],
)
def test_a_broken_compose_file_fails_validation(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    """The negative control: validation is not vacuous."""
    text = COMPOSE.read_text()
    assert old in text
    (tmp_path / "deploy").mkdir()
    shutil.copy(NGINX, tmp_path / "deploy" / "nginx.conf")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    done = _validate(broken)
    assert done.returncode != 0
    assert complaint in done.stdout + done.stderr


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "signbot:local"
    }


def _proxied_apps(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The replicas that serve web traffic (a ``SIGNBOT_ROLE=worker`` one stays out)."""
    return {
        name: service
        for name, service in _app_services(compose).items()
        if service.get("environment", {}).get("SIGNBOT_ROLE", "all") != "worker"
    }


def _setting_env_names() -> set[str]:
    """Every environment variable ``Settings`` reads (prefix + field, or its aliases)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def test_identical_app_replicas_behind_the_proxy() -> None:
    compose = _compose()
    apps = _proxied_apps(compose)
    assert len(apps) >= 2 and {"app1", "app2"} <= set(apps)
    for service in apps.values():
        assert service == apps["app1"], "replicas share one definition (x-app)"
    assert apps["app1"]["build"]["context"] == "."
    for service in _app_services(compose).values():
        assert "ports" not in service, "replicas are reached through the proxy only"
    proxy = compose["services"]["proxy"]
    assert proxy["ports"] == ["8000:80"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert set(proxy["depends_on"]) == set(apps)


def test_app_environment_names_real_settings() -> None:
    """A typo in a variable name would be silently ignored by the app: catch it here."""
    known = _setting_env_names()
    for name, service in _app_services(_compose()).items():
        env = service["environment"]
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        ours = {key for key in env if key.startswith(("SIGNBOT_", "SLACK_"))}
        unknown = sorted(ours - known)
        assert not unknown, f"{name} sets variables that are not Settings fields: {unknown}"
        assert env["SIGNBOT_ROLE"] in ("all", "api", "worker")


def test_app_environment_points_at_the_compose_services() -> None:
    compose = _compose()
    services = compose["services"]
    env = _app_services(compose)["app1"]["environment"]

    db = env["SIGNBOT_DATABASE_URL"]
    assert db.startswith("postgresql://signbot:") and db.endswith("@postgres:5432/signbot")
    password = db.removeprefix("postgresql://signbot:").split("@postgres", 1)[0]
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == password
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("signbot", "signbot")

    assert env["SIGNBOT_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["SIGNBOT_SMTP_URL"].endswith("smtp://mailpit:1025}")

    # The S3 credentials are MinIO's root user, and the bucket is the one minio-init makes.
    minio = services["minio"]["environment"]
    assert env["SIGNBOT_S3_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["SIGNBOT_S3_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert services["minio-init"]["environment"] == minio
    assert env["SIGNBOT_S3_ENDPOINT_URL"] == "http://minio:9000"
    bucket = env["SIGNBOT_STORAGE_URL"].removeprefix("s3://").split("/", 1)[0]
    assert f"mc mb --ignore-existing minio/{bucket}\n" in services["minio-init"]["command"][0]

    # No secret with a fixed value: empty means generated once and kept in the database.
    assert env["SIGNBOT_SECRET_KEY"] == "${SIGNBOT_SECRET_KEY:-}"


def test_apps_wait_for_healthy_data_services() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in _app_services(compose).items():
        depends = service["depends_on"]
        for data in DATA_SERVICES:
            assert depends[data] == {"condition": "service_healthy"}, (name, data)
            assert "healthcheck" in services[data], data
        assert depends["minio-init"] == {"condition": "service_completed_successfully"}
        assert service["restart"] == "unless-stopped"
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{_exposed_port()}/healthz" in check
        assert "start_period" in service["healthcheck"], "migrations run before serving"
        assert "/data" in {volume.split(":")[1] for volume in service["volumes"]}


def test_compose_volumes_are_named() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, (name, source)


# ------------------------------------------------------------------------------ Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _exposed_port() -> int:
    (port,) = [rest for keyword, rest in _final_stage() if keyword == "EXPOSE"]
    return int(port.split("/")[0])


def _json_args(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    (rest,) = [rest for k, rest in stage if k == keyword]
    if keyword == "HEALTHCHECK":
        rest = rest.split(" CMD ", 1)[1]
    return json.loads(rest)


def test_dockerfile_is_multi_stage_and_runs_as_non_root() -> None:
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2
    assert all(base.startswith("python:3.11-slim-bookworm") for base in froms)
    stage = _final_stage()
    keywords = [keyword for keyword, _ in stage]
    assert "COPY" in keywords and any("--from=builder" in r for k, r in stage if k == "COPY")
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert _json_args(stage, "CMD") == ["signbot", "serve"]
    assert ("STOPSIGNAL", "SIGTERM") in stage
    assert any("/healthz" in arg for arg in _json_args(stage, "HEALTHCHECK"))


def test_dockerfile_environment_is_settings_and_holds_no_secret() -> None:
    env = _env(_final_stage())
    ours = {key for key in env if key.startswith("SIGNBOT_")}
    unknown = sorted(ours - _setting_env_names())
    assert not unknown, f"Dockerfile sets variables that are not Settings fields: {unknown}"
    assert env["SIGNBOT_DATA_DIR"] == "/data"
    assert env["SIGNBOT_HOST"] == "0.0.0.0"
    assert int(env["SIGNBOT_PORT"]) == _exposed_port()
    for keyword, rest in _instructions():
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY\b", rest), rest


def test_image_keeps_alembic_and_templates_beside_the_package() -> None:
    """migrations.ALEMBIC_DIR is ``bot/../alembic``: the image runs ``bot`` from /app (an
    editable install), next to /app/alembic and /app/templates, which the build context keeps."""
    assert migrations.ALEMBIC_DIR == ROOT / "alembic"
    instructions = _instructions()
    assert ("WORKDIR", "/app") in _final_stage()
    assert any("pip install --no-deps -e /app" in rest for k, rest in instructions if k == "RUN")
    assert _env(_final_stage())["SIGNBOT_TEMPLATES_DIR"] == "/app/templates"
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "README.md",
        "bot/__init__.py",
        "bot/migrations.py",
        "alembic/env.py",
        *[str(p.relative_to(ROOT)) for p in (ROOT / "alembic" / "versions").glob("*.py")],
        *[str(p.relative_to(ROOT)) for p in (ROOT / "templates").glob("*.*")],
    ]
    for path in needed:
        for pattern in ignored:
            parts = Path(path).parts
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            assert not any(fnmatch.fnmatch(p, pattern) for p in prefixes), (path, pattern)
    for kept_out in ("tests", ".venv", ".git", "signbot-data", "bench"):
        assert kept_out in ignored


def test_image_command_and_health_check_work_as_the_image_runs_them(tmp_path: Path) -> None:
    """The CMD with the image's ENV (paths mapped: /app is the checkout, /data a temp dir),
    from another working directory, then the HEALTHCHECK's own command against it."""
    stage = _final_stage()
    env = {**os.environ, **_env(stage)}
    for name in list(env):
        if name.startswith(("SIGNBOT_", "SLACK_")) and name not in _env(stage):
            del env[name]
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SIGNBOT_DATA_DIR": str(data),
        "SIGNBOT_TEMPLATES_DIR": env["SIGNBOT_TEMPLATES_DIR"].replace("/app", str(ROOT), 1),
        "SIGNBOT_HOST": "127.0.0.1",
        "SIGNBOT_PORT": str(port),
    }
    script = Path(sys.executable).with_name("signbot")
    command = _json_args(stage, "CMD")
    argv = [str(script), *command[1:]] if script.exists() else [sys.executable, "-m", "bot"]
    health = _json_args(stage, "HEALTHCHECK")
    assert health[0] == "python"
    probe = [sys.executable, *health[1:]]

    def healthcheck() -> int:
        return subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode

    assert healthcheck() != 0, "the probe must fail while nothing listens"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60, proc=proc)
        assert healthcheck() == 0
    finally:
        proc.terminate()  # what STOPSIGNAL sends
        proc.wait(timeout=30)
    # A clean stop: uvicorn drains, then re-raises SIGTERM (exit 143 in a container).
    output = (tmp_path / "serve.log").read_text()
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output


# ----------------------------------------------------------------------------------- nginx


def _nginx_statements() -> str:
    return "\n".join(line.split("#", 1)[0] for line in NGINX.read_text().splitlines())


def test_nginx_config_is_well_formed() -> None:
    """No nginx here (and the file needs nginx >= 1.27.3, for `resolve`): its structure."""
    text = _nginx_statements()
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.endswith((";", "{", "}")):
            # the only multi-line statement: log_format's quoted parts
            assert line.startswith(("log_format", "'")), (number, line)


def test_nginx_balances_both_replicas_on_the_image_port() -> None:
    text = _nginx_statements()
    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{(.*?)\}", text, flags=re.S))
    assert len(upstreams) == 1
    (name, body), *_ = upstreams.items()
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)([^;]*);", body, flags=re.M)
    assert {host for host, _, _ in servers} == set(_proxied_apps(_compose()))
    for _, port, params in servers:
        assert int(port) == _exposed_port()
        assert "max_fails=" in params
    assert f"proxy_pass http://{name};" in text
    assert re.search(r"^\s*listen\s+80;", text, flags=re.M)
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "Host"):
        assert re.search(rf"proxy_set_header\s+{header}\s", text), header
    for timeout in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        assert re.search(rf"^\s*{timeout}\s+\d+s;", text, flags=re.M), timeout


def test_nginx_accepts_the_largest_upload() -> None:
    """50 MiB decoded is ~67 MiB as base64 inside a JSON body."""
    (size,) = re.findall(r"client_max_body_size\s+(\d+)m;", _nginx_statements())
    largest_mb = Settings.model_fields["max_upload_mb"].default
    assert int(size) >= math.ceil(largest_mb * 4 / 3) + 1
