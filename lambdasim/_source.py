"""The one way in for what users write: scenario files, templates, command-line values.

Every reader of user input goes through this module, so a mistake is reported the same
way wherever it was made: :class:`SourceError` carries ``file``, ``line``, ``key`` and
``reason``, and callers read those attributes instead of parsing a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lambdasim._errors import ConfigError

__all__ = [
    "SourceError",
    "env_argument",
    "read_json_argument",
    "services_text",
]


class SourceError(ConfigError):
    """What a user wrote is not valid: ``file:line: key: reason``.

    ``line`` counts from 1 (None when there is no line, e.g. a command-line option or a
    file that could not be read); ``key`` is the path of the setting, such as
    ``steps[2].invoke.count`` or ``Resources.Fn.Properties.Timeout`` (None when the
    mistake is not in one setting).
    """

    def __init__(self, file: str, line: int | None, key: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.file, self.line, self.key, self.reason)


# -- values several commands share --------------------------------------------------------


def read_json_argument(text: str, option: str) -> Any:
    """The JSON given to ``option``, inline or as ``@FILE``; errors say where and what."""
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"{option} @{path}: cannot read {path}: {e.strerror}") from None
        where = path
    else:
        where = option
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def env_argument(pairs: Iterable[str], option: str = "--env") -> dict[str, str]:
    """``--env KEY=VALUE`` options as a dict; errors say which one is malformed."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"{option} {pair!r}: write it as KEY=VALUE")
        env[key] = value
    return env


def services_text(text: str | None, source: str = "--services") -> dict[str, str]:
    """``"aws,redis=binary,memcached"`` -> ``{"aws": "auto", "redis": "binary", "memcached": "auto"}``.

    The one grammar of the services text, on the command line and in pytest's option and
    ini key: names separated by commas (or new lines, for an ini value), each optionally
    ``=PROVIDER``. The result is validated as ``Simulator(services=...)`` validates it;
    an error names ``source``.
    """
    services: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").replace("\n", ",").split(","))):
        kind, _, provider = part.partition("=")
        services[kind.strip()] = provider.strip() or "auto"
    from lambdasim._services.service import parse_services

    try:
        parse_services(services)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return services

