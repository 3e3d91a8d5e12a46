"""deploy/systemd (a hardened unit, SQLite in its state directory) and deploy/k8s (two replicas
on PostgreSQL, probes on /healthz, secrets from a Secret) are well formed, and the configs they
carry pass `smsbridge check`. There is no systemd or cluster here: the files' structure is
checked, and `systemd-analyze` verifies the unit where it is installed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from test_deploy import _FROM_ENV, _secret_values

from bridge.config import load_config
from bridge.lifecycle import STOP_GRACE

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "smsbridge.service"
UNIT_CONFIG = ROOT / "deploy" / "systemd" / "config.yaml"
K8S = ROOT / "deploy" / "k8s" / "smsbridge.yaml"
CONFIG_PATH = "/etc/smsbridge/config.yaml"  # where both examples keep the bridge config

_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${VAR} with no default
_DUMMY = {
    "SMSBRIDGE_PUBLIC_URL": "https://sms.example.com",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "TELEGRAM_USER_ID": "42",
    "TELEGRAM_BOT_TOKEN": "123456:dummy-bot-token",
    "POSTGRES_PASSWORD": "dummy-pg-password",
}


def required_vars(text: str) -> set[str]:
    return {name for line in text.splitlines() for name in _REQUIRED.findall(line.split("#")[0])}


def dummy_env(names: set[str]) -> dict[str, str]:
    return {name: _DUMMY.get(name, f"dummy-{name.lower()}") for name in names}


def check(config: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`smsbridge check`, with ``environ`` instead of anything the test process has."""
    env = {k: v for k, v in os.environ.items() if k not in environ and k != "STATE_DIRECTORY"}
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bridge.cli", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env | environ,
        cwd=ROOT,
        timeout=60,
    )


def seconds(value: str) -> float:
    """A systemd time span as this unit writes them: "15s", "1min", "15"."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value.strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


# -- systemd -------------------------------------------------------------------------------


def unit() -> dict[str, dict[str, list[str]]]:
    """The unit's sections, each key with all its values (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"keep each setting on one line: {raw}"
        if line.startswith("["):
            assert line.endswith("]"), raw
            current = sections.setdefault(line[1:-1], defaultdict(list))
            continue
        assert current is not None and "=" in line, raw
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


def service(key: str) -> str:
    """The last value of a [Service] key (the one systemd uses), "" when set to empty."""
    values = unit()["Service"].get(key)
    assert values is not None, f"[Service] has no {key}="
    return values[-1]


def test_the_unit_runs_the_bridge_with_its_config_and_secrets_from_a_root_only_file() -> None:
    command = shlex.split(service("ExecStart"))
    assert command[0].startswith("/") and command[0].endswith("/smsbridge"), command
    assert command[1:] == ["run", "--config", CONFIG_PATH], command
    assert service("EnvironmentFile") == "/etc/smsbridge/env"  # no "-": missing is an error
    assert "Environment" not in unit()["Service"], "secrets belong in the EnvironmentFile"
    assert service("Restart") in ("on-failure", "always")
    assert seconds(service("TimeoutStopSec")) >= max(10.0, STOP_GRACE + 2)
    assert "network-online.target" in " ".join(unit()["Unit"]["After"])
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


# Hardening settings: on, or one of the strict values (the unit file must say so itself).
_ON = [
    "DynamicUser",
    "PrivateTmp",
    "PrivateDevices",
    "NoNewPrivileges",
    "RestrictSUIDSGID",
    "RestrictNamespaces",
    "LockPersonality",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
]
_STRICT = {"ProtectSystem": {"strict"}, "ProtectHome": {"yes", "read-only", "tmpfs"}}
_STRICT |= {"CapabilityBoundingSet": {""}, "SystemCallArchitectures": {"native"}}
_STRICT |= {"UMask": {"0077", "0027"}} | {key: {"yes", "true"} for key in _ON}


@pytest.mark.parametrize("key", sorted(_STRICT))
def test_the_unit_is_hardened(key: str) -> None:
    assert service(key) in _STRICT[key], f"{key}={service(key)}"


def test_the_unit_may_open_internet_and_local_sockets_only() -> None:
    families = set(service("RestrictAddressFamilies").split())
    assert {"AF_INET", "AF_INET6"} <= families <= {"AF_INET", "AF_INET6", "AF_UNIX"}, families
    filters = unit()["Service"]["SystemCallFilter"]
    assert "@system-service" in filters and any(f.startswith("~") for f in filters), filters


def test_the_sqlite_file_is_in_the_unit_s_state_directory() -> None:
    state = service("StateDirectory")
    assert state == "smsbridge"
    needed = required_vars(UNIT_CONFIG.read_text(encoding="utf-8"))
    # As systemd runs it (STATE_DIRECTORY set) and as an operator checks it (unset).
    for extra in ({"STATE_DIRECTORY": f"/var/lib/{state}"}, {}):
        config = load_config(UNIT_CONFIG, environ=dummy_env(needed) | extra)
        assert config.store.url == f"sqlite:////var/lib/{state}/smsbridge.db", config.store.url
        assert config.server.host == "127.0.0.1"  # behind a reverse proxy on the host
        assert config.server.port > 1024  # no CAP_NET_BIND_SERVICE: the unit has none


def test_the_unit_names_every_variable_its_config_needs() -> None:
    header = UNIT.read_text(encoding="utf-8")
    needed = required_vars(UNIT_CONFIG.read_text(encoding="utf-8"))
    assert needed, "the config takes its secrets from the environment"
    missing = sorted(name for name in needed if name not in header)
    assert not missing, f"the unit's comment does not say to put {missing} in the env file"


def test_the_systemd_config_holds_no_literal_secret_and_passes_check() -> None:
    data = yaml.safe_load(UNIT_CONFIG.read_text(encoding="utf-8"))
    found = list(_secret_values(data))
    assert len(found) >= 3
    assert [(k, v) for k, v in found if not _FROM_ENV.match(v)] == []
    needed = required_vars(UNIT_CONFIG.read_text(encoding="utf-8"))
    done = check(UNIT_CONFIG, dummy_env(needed))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s*store: sqlite$", done.stdout, re.MULTILINE), done.stdout
    environ = dummy_env(needed)
    del environ["TELEGRAM_BOT_TOKEN"]
    done = check(UNIT_CONFIG, environ)
    assert done.returncode == 2 and "TELEGRAM_BOT_TOKEN is not set" in done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit_and_rates_it_ok(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: this test's own smsbridge stands in for it.
    program = Path(sys.executable).with_name("smsbridge")
    assert program.exists(), program
    text = UNIT.read_text(encoding="utf-8")
    copy = tmp_path / "smsbridge.service"
    copy.write_text(text.replace(shlex.split(service("ExecStart"))[0], str(program)))
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    done = subprocess.run(  # noqa: S603 - the system's systemd-analyze on our file
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    # Exposure 0 (locked down) .. 10 (none); --threshold is in tenths: fail above 2.0 ("OK").
    done = subprocess.run(  # noqa: S603
        [analyze, "security", "--offline=yes", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


# -- Kubernetes ----------------------------------------------------------------------------


def k8s() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(K8S.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") for d in docs)
    return docs


def one(kind: str) -> dict[str, Any]:
    [found] = [d for d in k8s() if d["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    [found] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


@pytest.fixture
def pod_config(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The ConfigMap's config.yaml as the file the container reads, and dummy values for the
    variables it needs."""
    folder, name = CONFIG_PATH.rsplit("/", 1)
    [mount] = [m for m in container()["volumeMounts"] if m["mountPath"] == folder]
    volumes = one("Deployment")["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    path = tmp_path / name
    path.write_text(one("ConfigMap")["data"][name], encoding="utf-8")
    return path, dummy_env(required_vars(path.read_text(encoding="utf-8")))


def secret_env() -> dict[str, tuple[str, str]]:
    """Each variable the container gets from a Secret: name -> (secret, key)."""
    found = {}
    for entry in container().get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            found[entry["name"]] = (ref["name"], ref["key"])
    return found


def test_the_manifest_has_a_configmap_a_deployment_of_two_and_a_service() -> None:
    kinds = [d["kind"] for d in k8s()]
    assert {"ConfigMap", "Deployment", "Service"} <= set(kinds), kinds
    assert len(kinds) == len(set(kinds)), kinds
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    command = container()["command"] + container().get("args", [])
    assert command == ["smsbridge", "run", "--config", CONFIG_PATH], command


def test_two_replicas_share_postgresql_and_stop_within_the_grace_period(
    pod_config: tuple[Path, dict[str, str]],
) -> None:
    config = load_config(*pod_config)
    assert config.store.url.startswith("postgresql"), "SQLite is one process, not two replicas"
    assert config.server.host == "0.0.0.0"  # noqa: S104 - in a pod, for the Service
    assert config.log_format == "json"
    grace = one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= max(10, STOP_GRACE + 2), grace


def test_probes_ask_healthz_on_the_port_the_config_listens_on(
    pod_config: tuple[Path, dict[str, str]],
) -> None:
    port = load_config(*pod_config).server.port
    ports = {p.get("name"): p["containerPort"] for p in container()["ports"]}
    assert port in ports.values(), ports
    for probe in ("readinessProbe", "livenessProbe"):
        http = container()[probe]["httpGet"]
        assert http["path"] == "/healthz", probe
        assert ports.get(http["port"], http["port"]) == port, (probe, http)
    target = one("Service")["spec"]["ports"][0]["targetPort"]
    assert ports.get(target, target) == port, target
    liveness = container()["livenessProbe"]
    # /healthz is 503 while a chat or gateway is down: a restart must not come at once.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 120, liveness


def test_secrets_come_from_a_secret_never_literal(pod_config: tuple[Path, dict[str, str]]) -> None:
    for entry in container().get("env", []):
        assert "value" not in entry or not re.search(
            r"pass|token|secret|key", entry["name"], re.IGNORECASE
        ), entry
    for source in container().get("envFrom", []):
        assert "secretRef" in source or "configMapRef" in source, source
    assert "Secret" not in [d["kind"] for d in k8s()], "no Secret with values in the repo"
    found = list(_secret_values(yaml.safe_load(pod_config[0].read_text(encoding="utf-8"))))
    assert len(found) >= 3  # the walk sees the tokens and keys at all
    assert [(k, v) for k, v in found if not _FROM_ENV.match(v)] == []
    password = make_url(load_config(*pod_config).store.url).password
    assert password == _DUMMY["POSTGRES_PASSWORD"]  # the store's password from the Secret too


def test_every_variable_the_config_needs_comes_from_the_secret(
    pod_config: tuple[Path, dict[str, str]],
) -> None:
    needed = set(pod_config[1])
    given = secret_env()
    assert needed and needed <= set(given), sorted(needed - set(given))
    header = K8S.read_text(encoding="utf-8").split("\n---", 1)[0]
    for secret, key in given.values():
        assert f"kubectl create secret generic {secret}" in header, secret
        assert f"--from-literal={key}=" in header, f"the header's command lacks {key}"


def test_the_k8s_config_passes_smsbridge_check(pod_config: tuple[Path, dict[str, str]]) -> None:
    config, environ = pod_config
    done = check(config, environ)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s*store: postgresql", done.stdout, re.MULTILINE), done.stdout
    del environ["POSTGRES_PASSWORD"]
    done = check(config, environ)
    assert done.returncode == 2 and "POSTGRES_PASSWORD is not set" in done.stderr, done.stderr
