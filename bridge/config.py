"""The config file: YAML, ${ENV} interpolation, pydantic validation, errors that name the path."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from bridge.confbase import ChatConfigBase, GatewayConfigBase, Strict
from bridge.errors import ConfigError
from bridge.logfmt import LogFormat, LogNumbers
from bridge.routeconf import RouteConfig, build_routes
from bridge.rules import Routes
from connectors import CHATS, GATEWAYS

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StoreConfig(Strict):
    url: str = "sqlite:///smsbridge.db"
    # How long a dead instance's duties (a gateway's polling, a chat's posting) wait before
    # another instance sharing the PostgreSQL store takes them over; renewed every quarter.
    lease_ttl: float = Field(default=10.0, ge=2.0, le=300.0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in ("sqlite", "sqlite+aiosqlite", "postgresql", "postgresql+asyncpg"):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @property
    def async_url(self) -> str:
        """The URL with the async driver SQLAlchemy needs."""
        scheme, rest = self.url.split("://", 1)
        driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}.get(
            scheme, scheme
        )
        return f"{driver}://{rest}"


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: HttpUrl | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)


class OpsConfig(Strict):
    """Where the watchdog posts its alerts: a configured chat, and a thread in it (by title;
    ignored by chats without threads)."""

    chat: str = Field(min_length=1)
    thread: str | None = Field(default="Gateway health", min_length=1, max_length=128)


# What a customer texts to stop and to restart: Twilio's and the CTIA's usual keywords.
STOP_KEYWORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
START_KEYWORDS = ["START", "UNSTOP", "YES"]


class OptOutConfig(Strict):
    """Opt-out keywords (an SMS that is exactly one, any case, spaces around ignored), and the
    text sent back once per stop (none by default: Twilio sends its own)."""

    stop: list[str] = Field(default_factory=lambda: list(STOP_KEYWORDS), min_length=1)
    start: list[str] = Field(default_factory=lambda: list(START_KEYWORDS))
    confirmation: str | None = Field(default=None, min_length=1, max_length=1600)

    @field_validator("stop", "start", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(word, bool) for word in value):
            raise ValueError('quote YES, NO, ON and OFF ("YES"): YAML reads them as true/false')
        return value

    @field_validator("stop", "start")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        words = [word.strip() for word in value]
        if any(not word for word in words):
            raise ValueError("a keyword must not be empty")
        return words

    @model_validator(mode="after")
    def _apart(self) -> OptOutConfig:
        both = {w.casefold() for w in self.stop} & {w.casefold() for w in self.start}
        if both:
            raise ValueError(f"keywords both in stop and start: {', '.join(sorted(both))}")
        return self


class Config(Strict):
    store: StoreConfig = StoreConfig()
    server: ServerConfig = ServerConfig()
    default_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: LogFormat = "text"
    # Customers' numbers in log lines: "masked" keeps their last 4 digits (…4567).
    log_numbers: LogNumbers = "masked"
    history_limit: int = Field(default=50, ge=1, le=1000)
    gateways: list[GatewayConfigBase] = Field(min_length=1)
    chats: list[ChatConfigBase] = Field(min_length=1)
    routes: list[RouteConfig] = Field(min_length=1)
    ops: OpsConfig | None = None  # no ops chat: the watchdog only logs, /healthz and /metrics
    opt_out: OptOutConfig = OptOutConfig()
    # A reply longer than this many SMS parts is refused unless sent again starting with "!".
    max_segments: int = Field(default=6, ge=1, le=255)

    def gateway(self, name: str) -> GatewayConfigBase:
        return next(g for g in self.gateways if g.name == name)

    def chat(self, name: str) -> ChatConfigBase:
        return next(c for c in self.chats if c.name == name)

    def routes_value(self) -> Routes:
        """The routes as the pure rules engine (bridge/rules.py) evaluates them."""
        return self._routes

    @cached_property
    def _routes(self) -> Routes:
        routes, problems = build_routes(
            self.routes,
            [g.name for g in self.gateways],
            [c.name for c in self.chats],
            self.default_region,
        )
        if problems:  # parse_config reports these first; a Config built by hand can get here
            raise ConfigError(problems)
        return routes

    def chats_for(self, gateway: str) -> list[str]:
        """Every chat a route may post ``gateway``'s SMS in."""
        return self._routes.chats_for(gateway)

    def default_gateway(self, chat: str) -> str | None:
        return self._routes.default_gateway(chat)


def expand_env(node: Any, environ: dict[str, str], path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(node, dict):
        return {k: expand_env(v, environ, _join(path, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_env(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(f"{path or '<root>'}: environment variable {name} is not set")
        return ""

    return _ENV_REF.sub(replace, node)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _loc_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path or "<root>"


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _problems(prefix: str, exc: ValidationError) -> list[str]:
    return [f"{_loc_path(prefix, tuple(e['loc']))}: {_message(dict(e))}" for e in exc.errors()]


def _typed_sections(
    raw: list[Any], section: str, registry: dict[str, Any], problems: list[str]
) -> list[BaseModel]:
    """Validate each gateway/chat with the model its ``type`` names, so errors carry clean paths."""
    built: list[BaseModel] = []
    for index, item in enumerate(raw):
        where = f"{section}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        kind = item.get("type")
        if kind not in registry:
            known = ", ".join(sorted(registry))
            problems.append(f"{where}.type: unknown type {kind!r} (known: {known})")
            continue
        try:
            built.append(registry[kind].config.model_validate(item))
        except ValidationError as exc:
            problems.extend(_problems(where, exc))
    return built


def parse_config(data: Any, environ: dict[str, str] | None = None) -> Config:
    """Validate an already-loaded YAML document; raise ``ConfigError`` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(["<root>: the config must be a YAML mapping"])
    problems: list[str] = []
    data = expand_env(data, dict(os.environ if environ is None else environ), "", problems)
    if problems:
        raise ConfigError(problems)  # everything else would only repeat these
    gateways = _typed_sections(_as_list(data, "gateways", problems), "gateways", GATEWAYS, problems)
    chats = _typed_sections(_as_list(data, "chats", problems), "chats", CHATS, problems)
    rest = {k: v for k, v in data.items() if k not in ("gateways", "chats")}
    config: Config | None = None
    try:
        config = Config.model_validate({**rest, "gateways": gateways, "chats": chats})
    except ValidationError as exc:
        # The typed sections were checked above, with better paths; don't report them twice.
        problems.extend(p for p in _problems("", exc) if not p.startswith(("gateways", "chats")))
    if config is not None and not problems:
        problems.extend(_cross_check(config))
    if problems or config is None:
        raise ConfigError(problems or ["<root>: invalid config"])
    return config


def _as_list(data: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = data.get(key)
    if value is None:
        problems.append(f"{key}: field required")
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    if not value:
        problems.append(f"{key}: at least one entry is required")
    return value


def _cross_check(config: Config) -> list[str]:
    problems: list[str] = []
    sections: tuple[tuple[str, Sequence[GatewayConfigBase | ChatConfigBase]], ...] = (
        ("gateways", config.gateways),
        ("chats", config.chats),
    )
    for section, items in sections:
        seen: set[str] = set()
        for index, item in enumerate(items):
            if item.name in seen:
                problems.append(f"{section}[{index}].name: duplicate name {item.name!r}")
            seen.add(item.name)
    chat_names = [c.name for c in config.chats]
    problems.extend(
        build_routes(
            config.routes, [g.name for g in config.gateways], chat_names, config.default_region
        )[1]
    )
    if config.ops is not None and config.ops.chat not in chat_names:
        problems.append(
            f"ops.chat: unknown chat {config.ops.chat!r} (configured: {', '.join(chat_names)})"
        )
    for kind_name, kind in CHATS.items():
        indexed = [(i, c) for i, c in enumerate(config.chats) if c.type == kind_name]
        if not indexed:
            continue  # a kind the config does not use stays unimported
        for position, message in kind.check([c for _i, c in indexed]):
            problems.append(f"chats[{indexed[position][0]}]: {message}")
    return problems


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{file}:{where}: {problem}"]) from None
    return parse_config(data, environ)


def secrets_of(config: Config) -> list[str]:
    """Every secret value in the config, for log redaction."""
    found: list[str] = []

    def walk(model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if hasattr(value, "get_secret_value"):
                secret = value.get_secret_value()
                if secret:
                    found.append(secret)
            elif isinstance(value, BaseModel):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, BaseModel):
                        walk(item)

    walk(config)
    # A PostgreSQL password sits inside the store URL (asyncpg's errors may quote the DSN).
    password = make_url(config.store.url).password
    if password:
        found.append(str(password))
    return found
