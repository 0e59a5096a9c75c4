"""StoredSession: one row of the session store, its table, and the rows a kiosk can trust.

The table is not STRICT (stores written by older versions stay readable), so a damaged record,
a hand edit or another tool's import can hold TEXT where a time belongs, and `PRAGMA
quick_check` passes it. Every read skips such a row (`SOUND_ROW`): handed to the kiosk, a text
time in the newest row made `time.time() - last_active_at` a TypeError at start, exit 70, and
the service restarted into its start limit and stayed down. A writable store drops such rows
when it opens (`SessionStore`): left there, they took part in every write's comparisons (SQLite
orders TEXT above any number, so a text time was the newest of its slot and a newer session
another kiosk shared for it was never filed).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    slot TEXT NOT NULL,
    continued_from TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    resumed_at REAL,
    filed INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_newest ON sessions (agent, slot, started_at);
"""
COLUMNS = "id, agent, slot, continued_from, started_at, ended_at, end_reason, resumed_at"
LAST_START = "coalesce(resumed_at, started_at)"
FILED = "(SELECT coalesce(max(filed), 0) + 1 FROM sessions)"
"""SQL: the next number in the order this kiosk wrote its rows in (a start, a resume, a shared
pointer filed or moved forward): what pruning ranks by where the clock cannot (`PRUNE_BEHIND`)."""
FILED_UNSOUND = "(filed < 0 OR filed > 2147483647)"
"""SQL: a `filed` no write of ours makes (TEXT and BLOB sort above every number; past 2**31 - 1 the
clock-behind mark, PRAGMA user_version, a signed 32-bit number, cannot name it); served by the index."""
_RESUMED_IN_MEMORY = "(excluded.resumed_at IS NOT NULL AND excluded.resumed_at IS NOT resumed_at)"
"""SQL, in UPSERT_REFILED: memory resumed the row (memory starts as a copy of the disk's rows, so a
resume other than the disk's is memory's). Not `excluded.resumed_at > {LAST_START}`: with the clock
behind (a Pi without a battery clock, until NTP answers) the resume lies before the disk's start,
and the disk's old end was kept for a running conversation."""
UPSERT_REFILED = f"""INSERT INTO sessions ({COLUMNS}, filed, replaces, own) VALUES (?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE {FILED} END, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    ended_at = CASE WHEN {_RESUMED_IN_MEMORY} THEN excluded.ended_at ELSE coalesce(excluded.ended_at, ended_at) END,
    end_reason = CASE WHEN {_RESUMED_IN_MEMORY} THEN excluded.end_reason ELSE coalesce(excluded.end_reason, end_reason) END,
    resumed_at = coalesce(excluded.resumed_at, resumed_at),
    filed = coalesce(excluded.filed, filed),
    replaces = coalesce(excluded.replaces, replaces),
    own = CASE WHEN {_RESUMED_IN_MEMORY} THEN excluded.own ELSE coalesce(excluded.own, own) END"""
"""SQL: memory's rows written back to the disk (`SessionStore.retry`), COLUMNS, filed, replaces and own each, in
memory's write order: a row memory numbered takes the next number on the disk (one without keeps
the disk's). One memory resumed (_RESUMED_IN_MEMORY) is memory's, its end too: resumed
there, its end was cleared, and the disk's old end was kept (the running conversation on the card
as ended before it was resumed; tests/test_store_sd_attacks.py)."""
CLOCK_SLACK_S = 60.0
"""A row whose last start lies this far past the kiosk's clock tells it the clock is behind."""
PRUNE = f"DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions ORDER BY {LAST_START} DESC, rowid DESC LIMIT -1 OFFSET ?)"
"""SQL (keep): all but the `keep` newest rows go, by their last start."""
PRUNE_BEHIND = "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions ORDER BY filed DESC, rowid DESC LIMIT -1 OFFSET ?)"
"""SQL (keep), with the clock behind rows already stored (a Pi without a battery clock on a site
that blocks NTP, in a fleet whose pointers carry the right time): ranked by time, the session
just recorded was the oldest, pruned in its own write. While the time cannot rank, the latest
written rows are kept (rows an older edge-agent wrote first to go)."""

Row = tuple[object, ...]


def written_columns(have: set[str], extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """For a sessions table with the columns `have` (an older edge-agent's lacks some): COLUMNS
    and `extra` as a SELECT list, a column it did not write read as NULL, and its last start."""
    wanted = ", ".join(c if c in have else "NULL" for c in [*COLUMNS.split(", "), *extra])
    return wanted, LAST_START if "resumed_at" in have else "started_at"


@dataclass(frozen=True)
class StoredSession:
    id: str
    agent: str
    slot: str
    continued_from: str | None
    started_at: float
    ended_at: float | None
    end_reason: str | None
    resumed_at: float | None = None
    """When the agent handed this same id out again (a continuation that kept its id)."""

    @property
    def last_active_at(self) -> float:
        """Wall-clock seconds of the last sign of life: the end, a later reuse, or the start."""
        return max(t for t in (self.started_at, self.ended_at, self.resumed_at) if t is not None)



MAX_TIME = "1e11"
"""Seconds: no time of a sound row is further from 1970 than this, about 3 000 years from now (an
infinity is, and so is a time another tool wrote in milliseconds, 1.7e12: either sorted newest
for its slot for good)."""
SOUND_ROW = (
    "typeof(id) = 'text' AND typeof(agent) = 'text' AND typeof(slot) = 'text' AND typeof(continued_from) IN ('text', 'null') "
    "AND typeof(started_at) IN ('real', 'integer') AND typeof(ended_at) IN ('real', 'integer', 'null') "
    "AND typeof(end_reason) IN ('text', 'null') AND typeof(resumed_at) IN ('real', 'integer', 'null') "
    f"AND started_at BETWEEN -{MAX_TIME} AND {MAX_TIME} AND coalesce(ended_at BETWEEN -{MAX_TIME} AND {MAX_TIME}, 1) "
    f"AND coalesce(resumed_at BETWEEN -{MAX_TIME} AND {MAX_TIME}, 1)"
)
"""SQL: a row whose every value has its column's type (what `StoredSession` promises), its times
finite (a REAL of +inf, 9e999 in a hand edit, sorted newest for its slot forever and was never
pruned: every later session of that slot shadowed)."""
