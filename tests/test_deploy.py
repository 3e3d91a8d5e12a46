"""deploy/compose.yaml (PostgreSQL plus bridge replicas) is well formed, keeps every secret in
the environment, and mounts a bridge config that passes `smsbridge check`. There is no Docker
daemon here, so the file's structure is checked, and its bridge healthcheck is run for real
against a loopback server."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bridge.config import load_config, secrets_of
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
CONFIG = DEPLOY / "config.yaml"

_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${VAR} with no default
# A secret must come from the environment, and without a fallback: ${VAR} or ${VAR:?message}.
_FROM_ENV = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")
_SECRET_KEY = re.compile(r"pass|token|secret|key|credential", re.IGNORECASE)
_DUMMY = {
    "POSTGRES_PASSWORD": "dummy-pg-password",
    "SMSBRIDGE_PUBLIC_URL": "https://sms.example.com",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "TELEGRAM_USER_ID": "42",
    "TELEGRAM_BOT_TOKEN": "123456:dummy-bot-token",
}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _bridges() -> dict[str, dict[str, Any]]:
    """The services built from the repository's Dockerfile."""
    found = {}
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        if (DEPLOY / context / dockerfile).resolve() == (ROOT / "Dockerfile").resolve():
            found[name] = service
    return found


def _required_vars() -> set[str]:
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    return {name for line in lines for name in _REQUIRED.findall(line.split("#", 1)[0])}


def _environ() -> dict[str, str]:
    return {name: _DUMMY.get(name, f"dummy-{name.lower()}") for name in _required_vars()}


def _healthcheck(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):  # compose's string form is CMD-SHELL
        return ["CMD-SHELL", test]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    return [str(part) for part in test]


def test_postgres_has_a_named_volume_and_a_pg_isready_healthcheck() -> None:
    postgres = _services()["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image in ("postgres", "docker.io/library/postgres") and tag, "pin the official image"
    assert "pg_isready" in " ".join(_healthcheck(postgres))
    named = set(_compose().get("volumes") or {})
    mounts = [str(v).split(":") for v in postgres["volumes"]]
    # 18+ keeps its data under /var/lib/postgresql; a mount at .../data would persist nothing.
    data_dir = "/var/lib/postgresql" if int(tag.split(".")[0]) >= 18 else "/var/lib/postgresql/data"
    assert any(m[0] in named and m[1] == data_dir for m in mounts), mounts
    assert postgres.get("restart") == "unless-stopped"


def test_at_least_two_bridges_wait_for_postgres_and_restart() -> None:
    bridges = _bridges()
    assert len(bridges) >= 2, sorted(_services())
    for name, bridge in bridges.items():
        assert bridge["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert bridge.get("restart") == "unless-stopped", name
        ports = [str(p).rsplit(":", 1)[0] for p in bridge.get("ports", [])]
        assert len(ports) == len(set(ports))
    host_ports = [str(p).rsplit(":", 1)[0] for b in bridges.values() for p in b.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two replicas publish the same host port"


def test_every_bridge_runs_deploy_config_yaml() -> None:
    for name, bridge in _bridges().items():
        command = bridge["command"]
        assert command[:2] == ["smsbridge", "run"], name
        target = command[command.index("--config") + 1]
        sources = [
            (DEPLOY / parts[0]).resolve()
            for parts in (str(v).split(":") for v in bridge["volumes"])
            if parts[1] == target
        ]
        assert sources == [CONFIG.resolve()], f"{name} mounts {sources} at {target}"


def test_every_bridge_healthcheck_asks_healthz_on_the_configured_port() -> None:
    port = load_config(CONFIG, environ=_environ()).server.port
    for name, bridge in _bridges().items():
        test = " ".join(_healthcheck(bridge))
        assert f"127.0.0.1:{port}/healthz" in test, name
        assert "curl" not in test and "wget" not in test, "the slim image has neither"
    assert f"EXPOSE {port}" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_bridge_healthcheck_passes_on_200_only(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    [bridge, *_] = _bridges().values()
    command = _healthcheck(bridge)
    assert command[0] == "CMD" and command[1] == "python", command
    port = health_server.server_address[1]
    code = command[3].replace("127.0.0.1:8080/", f"127.0.0.1:{port}/")
    assert code != command[3]
    done = subprocess.run(  # noqa: S603 - our interpreter, the compose file's own check
        [sys.executable, "-c", code], capture_output=True, timeout=30
    )
    assert (done.returncode == 0) is healthy, done.stderr.decode()


def _secret_values(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, value) under a secret-looking key, in mappings and `KEY=value` lists."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _secret_values(v, str(k))
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and "=" in item and not item.startswith("$"):
                k, _, v = item.partition("=")
                yield from _secret_values(v, k)
            else:
                yield from _secret_values(item, key)
    elif _SECRET_KEY.search(key) and node is not None:
        yield key, str(node)


def test_compose_holds_no_literal_secret() -> None:
    found = list(_secret_values(_compose()))
    assert len(found) >= 5  # the walk sees the passwords and tokens at all
    literal = [(k, v) for k, v in found if not _FROM_ENV.match(v)]
    assert not literal, literal


def test_the_bridges_get_every_variable_their_config_needs() -> None:
    services = _services()
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    for name, bridge in _bridges().items():
        environment = bridge["environment"]
        assert isinstance(environment, dict), name
        missing = _required_vars() - set(environment)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for var in _required_vars():
            assert environment[var].startswith(f"${{{var}"), (name, var)
        assert environment["POSTGRES_PASSWORD"] == password  # the same variable as postgres'


def test_the_config_points_at_the_compose_postgres_with_secrets_from_env() -> None:
    environ = _environ()
    config = load_config(CONFIG, environ=environ)
    url = urlsplit(config.store.url)
    assert url.scheme.startswith("postgresql")
    postgres = _services()["postgres"]["environment"]
    assert url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == f"/{postgres['POSTGRES_DB']}"
    assert url.password == environ["POSTGRES_PASSWORD"]
    assert config.store.lease_ttl == 10
    assert config.server.host == "0.0.0.0"  # noqa: S104 - in a container, for webhooks
    assert str(config.server.public_url).rstrip("/") == environ["SMSBRIDGE_PUBLIC_URL"]
    secrets = secrets_of(config)
    assert secrets and set(secrets) <= set(environ.values()), secrets


def _check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _required_vars()} | environ
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bridge.cli", "check", "--config", str(CONFIG)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_smsbridge_check_passes_and_names_postgresql() -> None:
    done = _check(_environ())
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s*store: postgresql", done.stdout, re.MULTILINE), done.stdout


def test_smsbridge_check_names_a_missing_variable() -> None:
    environ = _environ()
    del environ["TELEGRAM_BOT_TOKEN"]
    done = _check(environ)
    assert done.returncode == 2
    assert "environment variable TELEGRAM_BOT_TOKEN is not set" in done.stderr, done.stderr


@pytest.mark.parametrize("variable", sorted(_required_vars()))
def test_each_missing_variable_is_named(variable: str) -> None:
    environ = _environ()
    del environ[variable]
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG, environ=environ)
    [problem] = caught.value.problems
    assert problem.endswith(f": environment variable {variable} is not set"), problem


def test_the_readme_names_every_variable_and_the_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running several instances", 1)[1].split("\n## ", 1)[0]
    assert "docker compose -f deploy/compose.yaml up" in section
    assert "lease_ttl" in section and "standby" in section
    for variable in _required_vars():
        assert variable in section, variable
