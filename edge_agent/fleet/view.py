"""What `edge-agent fleet` shows: every kiosk under the MQTT prefix, as a table or a JSON snapshot.

`FleetView` is a pure model fed (topic, payload) pairs; the command (fleet/fleetcmd.py) subscribes
to `<prefix>/+/{availability,state,event,metrics}` (retained ones arrive at once) and renders it.
Everything in it came from whoever may publish under the prefix: ids no kiosk can have are left
out, fields are cut and made printable, and the view holds at most MAX_KIOSKS kiosks.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from edge_agent.core.config import DEVICE_ID_RE
from edge_agent.core.logs import printable
from edge_agent.fleet.pointer import finite_number

LEAVES = ("availability", "state", "event", "metrics")
MAX_PACKET_BYTES = 64 * 1024
"""Largest message the view takes (MQTT 5 Maximum Packet Size, sent on CONNECT; a kiosk's metrics
are ~3 KiB): anyone who may write a kiosk's state could retain 60 MiB there, and the broker handed
it to every `edge-agent fleet` at its start (269 MB peak); a conforming broker now keeps it back."""


@dataclass
class KioskRow:
    id: str
    online: bool | None = None
    state: str | None = None
    session_id: str | None = None
    continued_from: str | None = None
    version: str | None = None
    last_event: str | None = None
    rtt_ms: float | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    temperature_c: float | None = None
    echo_poor_room: bool | None = None
    """In a room its echo canceller does not cope with (None: echo cancellation off, or not said)."""
    last_seen: float | None = None
    """When the kiosk last said something, as far as the broker tells: a live message's arrival, or
    the time a retained state (`since`) or event (`at`) carries. A retained message's arrival is
    not it: a kiosk offline for an hour showed "seen 3s" (its retained topics, just delivered);
    except a retained `online`, which the broker holds only while the kiosk is connected (its last
    will replaces it): an idle kiosk showed as seen when it went idle, a day ago."""


def _object(payload: bytes) -> dict[str, Any] | None:
    """A kiosk's JSON message as an object; None for anything else (not JSON, not an object)."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # `[[[[...` 100 000 deep, retained by anyone who may write a state
        return None
    return data if isinstance(data, dict) else None


def _when(data: dict[str, Any], key: str) -> float | None:
    """The ISO time a kiosk's message carries under `key`, as a Unix time (None: none readable)."""
    text = data.get(key)
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at.timestamp() if at.tzinfo is not None else None


MAX_KIOSKS = 100_000
"""Most kiosks the view holds: anyone who may publish under the prefix (an open broker) could
name a new kiosk in every message, and the view grew with each for as long as it ran."""


class FleetView:
    def __init__(self, prefix: str, max_kiosks: int = MAX_KIOSKS) -> None:
        self.prefix = prefix.strip("/")
        self.kiosks: dict[str, KioskRow] = {}
        self.max_kiosks = max_kiosks
        self.full = False
        """A kiosk was left out because the view held `max_kiosks` already (said in the view)."""
        self._ignored_live = 0
        self._ignored_retained: set[int] = set()
        """Retained messages that were no kiosk's, by their topic's hash (a topic may be 64 KiB): the
        broker sends each again at every reconnect, and counted per delivery the same forged message
        grew the count each time."""
        self.lost_at: float | None = None
        """When the view lost the broker (None: connected, or not yet): with the broker gone the
        live view showed every kiosk `online yes`, frozen, and nothing said it heard nothing."""

    def link(self, up: bool, now: float | None = None) -> None:
        """The broker let the view in (`up`), or the connection to it closed."""
        if up:
            self.lost_at = None
        elif self.lost_at is None:
            self.lost_at = time.time() if now is None else now

    @property
    def ignored(self) -> int:
        """Messages that were no kiosk's (see `apply`), said under the view (IGNORED): each live one,
        and each retained one once, however often the broker delivered it again."""
        return self._ignored_live + len(self._ignored_retained)

    def _ignore(self, topic: str, retained: bool) -> None:
        if not retained:
            self._ignored_live += 1
        elif len(self._ignored_retained) < self.max_kiosks:  # bounded as the kiosks are
            self._ignored_retained.add(hash(topic))
        else:
            self._ignored_live += 1

    def _seen(self, row: KioskRow, now: float) -> float | None:
        """Now for a kiosk whose retained `online` the view holds, connected (the broker holds it only
        while the kiosk is: the view counted up from its arrival, an idle kiosk looking quieter the
        longer the admin watched); the moment the view lost the broker, at most."""
        if row.online:
            return now if self.lost_at is None else self.lost_at
        return row.last_seen

    def apply(self, topic: str, payload: bytes, now: float | None = None, retained: bool = False) -> None:
        parts = topic.split("/")
        if len(parts) != len(self.prefix.split("/")) + 2 or not topic.startswith(self.prefix + "/") or parts[-1] not in LEAVES:
            self._ignore(topic, retained)
            return
        kid, leaf = parts[-2], parts[-1]
        if not DEVICE_ID_RE.fullmatch(kid):  # no kiosk can have it (config checks device.id): listed
            self._ignore(topic, retained)  # as a kiosk, a forged or foreign topic looked like one the fleet lost
            return
        if not payload and leaf in ("availability", "state"):  # cleared, as the README says of a retired kiosk
            self._cleared(kid, leaf)
            return
        if leaf == "metrics" and retained:  # a kiosk never retains its metrics: someone else's (forged, or
            self._ignore(topic, retained)  # stale from anyone), shown as the kiosk's figures now (README: null before)
            return
        data = {} if leaf == "availability" else _object(payload)
        if data is None:  # before a row is made: a message that is not a kiosk's made a kiosk of its id
            self._ignore(topic, retained)
            return
        if kid not in self.kiosks and len(self.kiosks) >= self.max_kiosks:
            self.full = True  # said apart (FULL): a kiosk's, not someone else's
            return
        row = self.kiosks.setdefault(kid, KioskRow(kid))
        if not retained:
            row.last_seen = time.time() if now is None else now
        if leaf == "availability":
            row.online = payload == b"online"
            if row.online:  # retained `online` is the broker's word that the kiosk is connected now (its
                row.last_seen = time.time() if now is None else now  # will replaces it when it is not)
            return
        said = _when(data, "since" if leaf == "state" else "at") if retained else None
        if said is not None and (row.last_seen is None or said > row.last_seen):
            row.last_seen = min(said, time.time() if now is None else now)  # a clock ahead is not the future
        if leaf == "state":
            row.state, row.session_id = _text(data.get("state")), _text(data.get("session_id"))
            row.continued_from, row.version = _text(data.get("continued_from")), _text(data.get("version"))
        elif leaf == "event":
            row.last_event = _text(data.get("event")) or "?"
            reason = _text(data.get("reason"))
            if reason:
                row.last_event += f" ({reason})"
        elif leaf == "metrics":
            row.rtt_ms, row.cpu_percent = finite_number(data.get("rtt_ms")), finite_number(data.get("cpu_percent"))
            row.rss_mb, row.temperature_c = finite_number(data.get("rss_mb")), finite_number(data.get("temperature_c"))
            poor = data.get("echo_poor_room")
            row.echo_poor_room = poor if isinstance(poor, bool) else None

    def _cleared(self, kid: str, leaf: str) -> None:
        """A kiosk's retained availability or state cleared (`mosquitto_pub -r -n`, a retired kiosk):
        the live view showed it `NO` until restarted; gone once neither is left."""
        row = self.kiosks.get(kid)
        if row is None:
            return
        if leaf == "availability":
            row.online = None
        else:
            row.state = row.session_id = row.continued_from = row.version = None
        if row.online is None and row.state is None:
            del self.kiosks[kid]

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [asdict(replace(r, last_seen=self._seen(r, now))) for _, r in sorted(self.kiosks.items())]

    def render(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        # as wide as the longest id (a device.id is up to 63): cut to 18, `museum-floor2-kiosk-01`
        # and `-02` were two rows both called `museum-floor2-kios`
        rows = [r for _, r in sorted(self.kiosks.items())]  # one copy: paho's thread adds and removes rows meanwhile
        width = min(max([18, *(len(r.id) for r in rows)]), ID_WIDTH_MAX)
        head = f"{'kiosk':<{width}} {'online':<7} {'state':<11} {'session':<14} {'last event':<26} {'rtt':>6} {'cpu%':>5} {'temp':>5} {'echo':>5} {'seen':>6}"
        lines = [head, "-" * len(head)]
        if self.lost_at is not None:
            lines.insert(0, f"NOT CONNECTED to the broker for {now - self.lost_at:.0f}s (reconnecting): what it said before, online unknown")
        for r in rows:
            online = "?" if r.online and self.lost_at is not None else "yes" if r.online else "NO" if r.online is False else "?"
            seen_at = self._seen(r, now)
            seen = f"{now - seen_at:.0f}s" if seen_at else "-"
            echo = "-" if r.echo_poor_room is None else "POOR" if r.echo_poor_room else "ok"
            lines.append(
                f"{_cut(r.id, width):<{width}} {online:<7} {(r.state or '-'):<11} {(r.session_id or '-')[:14]:<14} {(r.last_event or '-')[:26]:<26} "
                f"{_num(r.rtt_ms):>6} {_num(r.cpu_percent):>5} {_num(r.temperature_c):>5} {echo:>5} {seen:>6}"
            )
        if not rows:
            lines.append(f"(no kiosks under {self.prefix}/ yet)")
        if self.full:
            lines.append(FULL.format(self.max_kiosks))
        if self.ignored:
            lines.append(IGNORED.format(self.ignored, self.prefix))
        return "\n".join(lines)


ID_WIDTH_MAX = 63
"""The widest the kiosk column gets (a device.id is 1-63 characters, the only ids listed)."""
FULL = "more kiosks than the view holds ({}): the rest are not shown (a fleet this large, or someone naming kiosks on the broker)"


IGNORED = (
    "messages left out as no kiosk's: {} under {}/ (an id no device.id can have, not a JSON object, "
    "retained metrics): someone else publishes there"
)
"""Said under the view when it left messages out: counted and never shown, an admin watching a
broker where someone forged kiosks saw a quiet, healthy fleet."""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


MAX_TEXT_CHARS = 200
"""Most characters of one field kept from a message (the view shows fewer)."""


def _text(value: Any) -> str | None:
    """A field of anyone's message, fit for a terminal: None unless it is a string; what is not
    printable (escape codes, newlines) shown as `?`."""
    if not isinstance(value, str):
        return None
    return printable(value, MAX_TEXT_CHARS)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"
