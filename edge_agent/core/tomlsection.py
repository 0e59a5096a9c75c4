"""Section: typed, validated reading of one TOML table of the config, with one clear error per key.

Every value is read through a Section, which names the key in its `ConfigError`
(`section.key`), never shows a secret's value, and remembers which keys were read so that
`done()` can refuse the unknown ones (typos must not fall back to defaults silently).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from edge_agent.core.statefiles import read_regular
from edge_agent.errors import SHOWN_MAX, ConfigError

T = TypeVar("T")
SECRET_KEYS = frozenset({"agent.public_key", "mqtt.password"})
"""Keys whose values are never shown, not even in the error about a wrongly typed value."""


def as_toml(value: object) -> str:
    """A value as the config wrote it, for a message: `true` / `false`, not Python's True / False."""
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


class BadValue(ConfigError):
    """A key whose value alone is wrong (its type, its range, its choices, or a key nobody reads),
    whatever else its section sets: `read_section` reads the section on without it to name
    the next such key too. A problem between keys stays a plain ConfigError."""


class Section:
    """Reads typed values out of one TOML table and remembers which keys were consumed."""

    def __init__(self, name: str, table: object) -> None:
        if not isinstance(table, dict):
            raise ConfigError(name, f"must be a table ([{name}]), got {type(table).__name__}")
        self.name = name
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def _get(self, key: str, default: object) -> object:
        self.seen.add(key)
        value: object = self.table.get(key, default)
        return value

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def _not_a_string(self, key: str, value: object) -> ConfigError:
        shown = f"a {type(value).__name__} (not shown: it is a secret)" if self.key(key) in SECRET_KEYS else as_toml(value)
        return BadValue(self.key(key), f"must be a string, got {shown}")

    def _string(self, key: str, value: object) -> str:
        """`value` as a string; a NUL in it (TOML's \\u0000) is refused here, since no path, name
        or secret holds one: in `device.state_dir` it reached os.stat as an unexpected error
        (exit 70, restarted by systemd) instead of a config error."""
        if not isinstance(value, str):
            raise self._not_a_string(key, value)
        if "\0" in value:
            raise BadValue(self.key(key), "must not contain a NUL character (\\u0000)")
        return value

    def text(self, key: str, default: str) -> str:
        return self._string(key, self._get(key, default))

    def required_text(self, key: str, default: str, what: str) -> str:
        """A string that must not be blank (a host, a path): `what` says what it names. A blank
        `mqtt.host` went to paho and exited 70; a blank `device.state_dir` put the store in the
        working directory and made that directory private."""
        value = self.text(key, default)
        if not value.strip():
            raise BadValue(self.key(key), f"must name {what}, got an empty string (leave the key out for the default {default!r})")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is None:
            return None
        return self._string(key, value) or None

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise BadValue(self.key(key), f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(self.key(key), f"must be a whole number, got {as_toml(value)}")
        if not lo <= value <= hi:
            raise BadValue(self.key(key), f"must be between {lo} and {hi}, got {value}")
        return value

    def opt_int(self, key: str, lo: int, hi: int) -> int | None:
        if self.table.get(key) is None:
            self.seen.add(key)
            return None
        return self.integer(key, 0, lo, hi)

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadValue(self.key(key), f"must be a number, got {as_toml(value)}")
        if not lo <= value <= hi:
            raise BadValue(self.key(key), f"must be between {lo} and {hi}, got {value}")
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise BadValue(self.key(key), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def table_of(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise BadValue(self.key(key), f"must be a table, got {value!r}")
        return dict(value)

    def json_table(self, key: str) -> dict[str, Any]:
        """A table that goes to the agent as JSON (`agent.metadata`, `agent.config`): TOML's
        dates and times, nan and inf have no JSON form, and are refused here naming the key
        (they made every `initiate` fail, one reconnect after another, at each press)."""
        table = self.table_of(key)
        problems = _json_problems(self.key(key), table)
        if problems:  # every value without a JSON form at once
            raise ConfigError.together(problems)
        return table

    def unknown_keys(self) -> list[ConfigError]:
        """A BadValue for each key nobody asked for, in one pass (a section read once per unknown
        key sorted every key left each time: 20000 of them took 45 s). A near name is looked for
        only for those an error report shows (`ConfigError.shown`): for 100000 it took 4 s."""
        names = sorted(set(self.table) - self.seen)
        return [BadValue(self.key(name), "unknown key" + (f" (did you mean {close}?)" if i < SHOWN_MAX and (close := closest(name, self.seen)) else "")) for i, name in enumerate(names)]

    def done(self) -> None:
        """Reject keys nobody asked for: a typo must not silently fall back to a default."""
        unknown = self.unknown_keys()
        if unknown:
            raise ConfigError.together(unknown)


def read_section(name: str, read: Callable[[Section], T], table: object) -> T:
    """One section's settings; ConfigError for its first problem, carrying in `more` every later
    key whose value alone is wrong (`BadValue`), found by reading on with that key's default."""
    problems: list[ConfigError] = []
    left = dict(table) if isinstance(table, dict) else table
    for _ in range(len(left) + 1 if isinstance(left, dict) else 1):
        try:
            reader = Section(name, left)
            settings = read(reader)
        except ConfigError as exc:
            found, exc.more = exc.all(), ()
            if not problems or isinstance(exc, BadValue):
                named = {str(q) for q in problems}
                problems += [p for p in found if str(p) not in named]
            if not isinstance(left, dict) or not exc.key.startswith(f"{name}."):
                break  # the section is no table, or the problem is no key of it
            rest = exc.key.removeprefix(f"{name}.")
            key = rest if rest in left else rest.split(".")[0]  # a quoted "a.b" key, or agent.metadata's a.b
            if key not in left:
                break
            del left[key]  # read on with its default: the next bad key, if any
            continue
        problems += reader.unknown_keys()  # all at once, in one pass
        if not problems:
            return settings
        break
    raise ConfigError.together(problems)


JSON_MAX_DEPTH = 64
"""Deepest nesting of a table that goes to the agent as JSON: dotted keys nest without tomllib
recursing, and 5000 deep was a RecursionError (exit 70) here."""


def _json_problems(key: str, value: object) -> list[ConfigError]:
    """A BadValue for each value under `key` without a JSON form (walked without recursing)."""
    problems: list[ConfigError] = []
    stack: list[tuple[str, object, int]] = [(key, value, 0)]
    while stack:
        where, item, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth >= JSON_MAX_DEPTH:
            problems.append(BadValue(where, f"nested more than {JSON_MAX_DEPTH} deep (it goes to the agent as JSON)"))
        elif isinstance(item, dict):
            stack += reversed([(f"{where}.{name}", sub, depth + 1) for name, sub in item.items()])
        elif isinstance(item, list):
            stack += reversed([(f"{where}[{i}]", sub, depth + 1) for i, sub in enumerate(item)])
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(BadValue(where, f"must be a finite number (it goes to the agent as JSON), got {item}"))
        elif not isinstance(item, (str, int, float)):  # bool is an int
            problems.append(BadValue(where, f"a TOML {type(item).__name__} has no JSON form (it goes to the agent as JSON): write it as a string"))
    return problems


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name a typo most resembles (difflib's ratio of at least 0.6), or None."""
    import difflib  # only on the error path: start-up stays light

    found = difflib.get_close_matches(name, sorted(known), n=1)
    return found[0] if found else None


def module_available(name: str) -> bool:
    """Whether an optional package can be imported (without importing it: it may be heavy)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


SECRET_FILE_MAX_BYTES = 64 * 1024
"""Largest secret file read (a key, a password or a badge secret is well under 1 KiB): a path
mistyped to a log, a disk image or /dev/zero is refused, not read into memory."""


def _secret_file_bytes(key: str, path: str) -> bytes:
    """The file's bytes; ConfigError naming `key` (never the content) when it cannot be read, is
    no regular file, is larger than SECRET_FILE_MAX_BYTES or holds nothing but white space.

    Opened without blocking and checked before reading: a FIFO (a path mistyped, or a secret
    meant to be piped in) blocked `run` and the doctor at open until something wrote to it, and a
    device (/dev/zero) is no file a secret is kept in."""
    try:
        raw = read_regular(path, SECRET_FILE_MAX_BYTES + 1)
    except ValueError:
        raise ConfigError(key, f"{path} is not a regular file") from None
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise ConfigError(key, f"{path} is larger than {SECRET_FILE_MAX_BYTES // 1024} KiB: not a secret file")
    if not raw.strip():
        raise ConfigError(key, f"{path} is empty")
    return raw


def _as_text(raw: bytes) -> str | None:
    """`raw` as the text a secret is: UTF-8, newlines as text mode reads them, white space
    around it (a trailing newline, CRLF) and a byte-order mark (some Windows editors save one)
    dropped; None when it is not UTF-8."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def secret_from_file(key: str, path: str | None) -> str | None:
    """The secret text in `path` (None: no file set). ConfigError naming `key`, never the
    content, when it cannot be read, is empty, too large or not UTF-8 text."""
    if not path:
        return None
    text = _as_text(_secret_file_bytes(key, path))
    if text is None:
        raise ConfigError(key, f"{path} is not UTF-8 text")
    if not text:
        raise ConfigError(key, f"{path} is empty")
    return text


def secret_bytes_from_file(key: str, path: str) -> bytes:
    """A secret that is bytes (the badge secret, an HMAC key): a text file as `secret_from_file`
    reads it, UTF-8 encoded; a file that is not UTF-8 text (`head -c 32 /dev/urandom`) byte for
    byte. ConfigError naming `key` as `secret_from_file`."""
    raw = _secret_file_bytes(key, path)
    text = _as_text(raw)
    if text is None:
        return raw
    if not text:
        raise ConfigError(key, f"{path} is empty")
    return text.encode("utf-8")


def url_or_none(s: Section, key: str) -> str | None:
    url = s.opt_str(key)
    if url is not None and not url.startswith(("http://", "https://")):
        raise BadValue(s.key(key), f"must be an http:// or https:// URL, got {url!r}")
    return url


def websocket_url(s: Section, key: str, default: str) -> str:
    """A ws:// or wss:// URL with a host and, if one is given, a port of 1-65535. Only the
    scheme was checked: `wss://` or a port of 99999 passed, `run` reported ready and failed
    at the first press, a visitor's."""
    url = s.text(key, default)
    if not url.startswith(("ws://", "wss://")):
        raise BadValue(s.key(key), f"must start with wss:// (or ws:// for a local simulator), got {url!r}")
    from urllib.parse import urlsplit  # only here: start-up stays light

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket
        raise BadValue(s.key(key), f"not a URL ({exc}), got {url!r}") from None
    if not parts.hostname:
        raise BadValue(s.key(key), f"needs a host (wss://HOST[:PORT]/PATH), got {url!r}")
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise BadValue(s.key(key), f"the port must be a number from 1 to 65535, got {url!r}")
    # what websockets' `connect` refuses (websockets.uri.parse_uri) passed, and every press then
    # failed before a socket opened, blamed on a redirect (health.classify) and retried
    if parts.fragment:
        raise BadValue(s.key(key), f"a WebSocket URL has no #fragment, got {url!r}")
    if parts.username is not None and parts.password is None:
        raise BadValue(s.key(key), f"a user name needs a password (wss://USER:PASSWORD@HOST), got {url!r}")
    return url
