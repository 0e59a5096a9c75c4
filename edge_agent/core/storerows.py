"""The session store's rows as a table: its schema and upgrades, which rows to trust, which to
prune (by time, or by the order they were written in while the clock is behind), the rows
carried between the disk and memory, and a fleet's shared session filed. SessionStore (store.py)
runs these on its connection."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from edge_agent.core.storedsession import CLOCK_SLACK_S, COLUMNS, FILED, FILED_UNSOUND, LAST_START, PRUNE, PRUNE_BEHIND, SCHEMA, SOUND_ROW, Row, written_columns

T = TypeVar("T")
log = logging.getLogger("edge_agent.core.store")  # the store's own lines, as before they moved here


def prune(db: sqlite3.Connection, keep: int) -> None:
    """All but `keep` rows go: by their last start, or, while the clock is behind rows stored here
    and until the rows written then are gone, by the order they were written in (`PRUNE_BEHIND`).
    The last row written while it was behind is kept in PRAGMA user_version (0: none): once NTP
    set the clock right, ranked by time, the session recorded just before was the oldest and the
    first to go."""
    marked = mark(db)
    behind = _clock_behind(db, LAST_START)
    if behind:
        last = db.execute("SELECT max(filed) FROM sessions").fetchone()[0]
        if isinstance(last, int) and last != marked:
            set_mark(db, last)
    elif marked and db.execute("SELECT 1 FROM sessions WHERE filed <= ? LIMIT 1", (marked,)).fetchone() is None:
        set_mark(db, 0)
        marked = 0
    db.execute(PRUNE_BEHIND if behind or marked else PRUNE, (keep,))


def mark(db: sqlite3.Connection) -> int:
    """The last row written while the clock was behind (PRAGMA user_version; 0: none, see `prune`)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def set_mark(db: sqlite3.Connection, filed: int) -> None:
    db.execute(f"PRAGMA user_version = {int(filed)}")


def _clock_behind(db: sqlite3.Connection, last_start: str) -> bool:
    """A row's last start lies past the kiosk's clock (by more than `CLOCK_SLACK_S`)."""
    return db.execute(f"SELECT 1 FROM sessions WHERE {last_start} > ? LIMIT 1", (time.time() + CLOCK_SLACK_S,)).fetchone() is not None


def newest_order(db: sqlite3.Connection, last_start: str = LAST_START) -> str:
    """SQL ORDER BY ranking a slot's rows for the press (`SessionStore.newest`): by the order they
    were written in while the clock is behind a row (their times cannot rank them); once it is set
    right, while rows written behind are kept (the mark), the rows written since first, by time,
    and the rest by write order; else by time. Ranked by time, a session stored under a clock that
    was behind stayed under an earlier one: after a restart with the clock still behind every press
    started fresh, and once NTP set it right the press continued the visitor before. The listing
    (`SessionStore.recent`, `edge-agent sessions`) ranks the same: by the wall clock it showed the
    conversation just held after every one before the boot, or cut it (`--limit`). `last_start`: an
    older version's store's (`written_columns`)."""
    if _clock_behind(db, last_start):
        return "filed DESC, rowid DESC"
    marked = mark(db)
    if marked:
        return f"coalesce(filed > {marked}, 0) DESC, CASE WHEN filed > {marked} THEN {last_start} END DESC, filed DESC, rowid DESC"
    return f"{last_start} DESC, rowid DESC"


def own_newest_rows(db: sqlite3.Connection, limit: int) -> list[Row]:
    """COLUMNS and replaces of every (agent, slot)'s newest row (as the press ranks: `newest_order`)
    where that row is this kiosk's own, the latest `limit` written first."""
    order = newest_order(db)
    return db.execute(
        f"SELECT {COLUMNS}, replaces FROM sessions s WHERE own = 1 AND {SOUND_ROW} AND id = "
        f"(SELECT id FROM sessions WHERE agent = s.agent AND slot = s.slot AND {SOUND_ROW} ORDER BY {order} LIMIT 1) "
        "ORDER BY filed DESC, rowid DESC LIMIT ?",
        (limit,),
    ).fetchall()


def carried_rows(db: sqlite3.Connection, keep: int) -> tuple[list[Row], int]:
    """The `keep` rows pruning would keep (`prune`), COLUMNS, filed, replaces and own each, and the store's mark;
    a column an older version did not write reads NULL. With the clock behind, or marked as having
    been, ranked by time the rows written last were the ones left behind (a card read-only at
    boot with `keep_sessions` lowered: the visitor's session stayed on the card, out of memory)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    wanted, last_start = written_columns(have, ("filed", "replaces", "own"))
    marked = mark(db) if "filed" in have else 0  # an older version's store has no write order (nor mark)
    by_filed = "filed" in have and (marked != 0 or _clock_behind(db, last_start))
    order = "filed DESC, rowid DESC" if by_filed else f"{last_start} DESC, rowid DESC"
    return db.execute(f"SELECT {wanted} FROM sessions ORDER BY {order} LIMIT ?", (keep,)).fetchall(), marked


def drop_unsound(db: sqlite3.Connection) -> None:
    """Deletes the rows no read trusts (`SOUND_ROW`), which every write still compared with.
    A store another process holds past the busy timeout keeps them, skipped by every read.
    A `filed` no write of ours makes (TEXT, a BLOB, past 2**31 - 1) is cleared: it ranked above every
    number, FILED handed every later write one same number, and a resumed session went first."""
    if db.execute(f"SELECT 1 FROM sessions WHERE {FILED_UNSOUND} LIMIT 1").fetchone() is not None:
        try:
            db.execute(f"UPDATE sessions SET filed = NULL WHERE {FILED_UNSOUND}")
        except sqlite3.OperationalError as exc:
            log.warning("session store: write order of the wrong type kept for now: %s", exc)
    if db.execute(f"SELECT 1 FROM sessions WHERE NOT ({SOUND_ROW}) LIMIT 1").fetchone() is None:
        return
    try:
        unsound = db.execute(f"DELETE FROM sessions WHERE NOT ({SOUND_ROW})").rowcount
    except sqlite3.OperationalError as exc:
        log.warning("session store: rows of the wrong type or with an infinite time kept for now: %s", exc)
        return
    log.warning("session store: %d row(s) of the wrong type or with an infinite time deleted (a hand edit, another tool's import)", unsound)


UNDECODABLE = "Could not decode to UTF-8"
"""The start of sqlite3's error for a TEXT value that is no UTF-8 (a hand edit, another tool's import)."""


def drop_undecodable(db: sqlite3.Connection) -> int:
    """Deletes the rows with text that is no UTF-8, and says how many (none: the error was not
    theirs). Every read that met such a row raised, so one of them moved the kiosk's store to
    memory (no resume of what the card held, and the row's escape codes in the fault it logged and
    published). Found only when a read fails (`SessionStore._run`): checking each row at every
    start would read a fleet's 100 000 shared sessions on a Pi for nothing."""
    bad = []
    try:
        for rowid, *texts in db.execute("SELECT rowid, CAST(id AS BLOB), CAST(agent AS BLOB), CAST(slot AS BLOB), CAST(continued_from AS BLOB), CAST(end_reason AS BLOB) FROM sessions"):
            try:
                for text in texts:
                    if text is not None:
                        bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                bad.append((rowid,))
        if bad:
            in_transaction(db, lambda db: db.executemany("DELETE FROM sessions WHERE rowid = ?", bad))
            log.warning("session store: %d row(s) with text that is no UTF-8 deleted (a hand edit, another tool's import)", len(bad))
    except sqlite3.Error:  # the disk's own fault: the caller's handling of it goes on
        return 0
    return len(bad)


def create_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    if "resumed_at" not in columns:  # a store written by an older edge-agent
        db.execute("ALTER TABLE sessions ADD COLUMN resumed_at REAL")
    if "filed" not in columns:
        db.execute("ALTER TABLE sessions ADD COLUMN filed INTEGER")
    if "replaces" not in columns:  # a shared fresh start's predecessor (`merge_pointer`)
        db.execute("ALTER TABLE sessions ADD COLUMN replaces TEXT")
    if "own" not in columns:  # 1: started or resumed here (`SessionStore.own_newest`)
        db.execute("ALTER TABLE sessions ADD COLUMN own INTEGER")
    db.execute("CREATE INDEX IF NOT EXISTS sessions_filed ON sessions (filed)")
    # pruning orders by the last start on every write; without this index a store of 100 000
    # sessions (a fleet's shared slots) sorts them all each time: 76 ms a write instead of 3.5 ms
    db.execute(f"CREATE INDEX IF NOT EXISTS sessions_last_start ON sessions ({LAST_START})")


def merge_pointer(db: sqlite3.Connection, agent: str, slot: str, sid: str, cont: str | None, started_at: float, ended_at: float | None, replaces: str | None = None, order: str | None = None) -> int:
    """One session another kiosk shared (`SessionStore.merge_shared`), in the caller's
    transaction: filed when newer than what the store has for its (agent, slot) (the latest start
    wins, ties by the larger id); a known id only has its last start and its end moved forward.
    One that continues the slot's newest session is newer whatever the kiosks' clocks say: where
    its start is not later than that session's last sign of life (the other kiosk's clock behind,
    or this one's ahead: it was kept out, and the person's conversation there not followed), it
    counts as started on arrival; and the session the newest continues is not moved past it (heard
    again, a time from the future is clamped to a later now each time). So is a fresh start that
    `replaces` the slot's newest (its kiosk knew that session and started anew: a `new` command at a
    kiosk whose clock is behind the one of that session lost the person's new conversation to the
    fleet). `order`: `newest_order(db)`,
    when the caller has it (the same for a whole batch: no filed pointer lies past the clock). Returns
    1 when a new row was filed."""
    # the slot's newest as the press ranks it (`newest_order`): by the wall clock, a row a clock
    # ahead had stored stayed the newest here, and a continuation of the session the press
    # continues (the visitor moved on to another kiosk) was never filed
    newest = db.execute(
        f"SELECT id, max({LAST_START}, coalesce(ended_at, 0)), continued_from, replaces FROM sessions WHERE agent = ? AND slot = ? ORDER BY {order or newest_order(db)} LIMIT 1",
        (agent, slot),
    ).fetchone()
    continues_newest = newest is not None and newest[0] != sid and newest[0] in (cont, replaces)
    if continues_newest and started_at <= newest[1]:
        started_at = max(math.nextafter(newest[1], math.inf), time.time())
        ended_at = None if ended_at is None else max(ended_at, started_at)
    # older than the newest (which continues it, or replaced it: a fresh start's `replaces` is kept
    # for this, else a kiosk ahead that sent it again took the slot back here): only its end moves
    continued = newest is not None and newest[0] != sid and sid in (newest[2], newest[3])
    if not continued:
        # resumed at another kiosk: its pointer is that kiosk's to publish now, no longer ours
        db.execute(f"UPDATE sessions SET resumed_at = ?, filed = {FILED}, own = NULL WHERE id = ? AND agent = ? AND slot = ? AND ? > {LAST_START}", (started_at, sid, agent, slot, started_at))
    if ended_at is not None:
        db.execute("UPDATE sessions SET ended_at = ? WHERE id = ? AND agent = ? AND slot = ? AND (ended_at IS NULL OR ended_at < ?)", (ended_at, sid, agent, slot, ended_at))
    if continued:
        return 0
    return int(
        db.execute(
            f"INSERT INTO sessions ({COLUMNS}, filed, replaces) SELECT ?, ?, ?, ?, ?, ?, NULL, NULL, {FILED}, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE id = ?) AND (? OR NOT EXISTS "
            f"(SELECT 1 FROM sessions WHERE agent = ? AND slot = ? AND ({LAST_START} > ? OR ({LAST_START} = ? AND id > ?))))",
            (sid, agent, slot, cont, started_at, ended_at, replaces, sid, continues_newest, agent, slot, started_at, started_at, sid),
        ).rowcount
    )


def delete_slot(db: sqlite3.Connection, agent: str, slot: str, sessions: tuple[str, ...] | None) -> tuple[str, ...]:
    """Deletes one (agent, slot)'s sessions: those named in `sessions` and every one continuing
    one of them, however many links down the chain (s-3 continuing s-2 continuing a named s-1
    carries the forgotten turns too), or (None) all of them; returns the ids deleted."""
    if sessions is None:
        ids = tuple(str(r[0]) for r in db.execute("SELECT id FROM sessions WHERE agent = ? AND slot = ?", (agent, slot)))
        db.execute("DELETE FROM sessions WHERE agent = ? AND slot = ?", (agent, slot))
        return ids
    seeds = " UNION ".join("SELECT ?" for _ in sessions)
    chain = (
        f"WITH RECURSIVE gone(id) AS ({seeds} UNION SELECT s.id FROM sessions s JOIN gone g ON s.continued_from = g.id "
        "WHERE s.agent = ? AND s.slot = ?) SELECT id FROM sessions WHERE agent = ? AND slot = ? AND id IN (SELECT id FROM gone)"
    )
    ids = tuple(str(r[0]) for r in db.execute(chain, (*sessions, agent, slot, agent, slot)))
    if ids:
        marks = ",".join("?" * len(ids))
        db.execute(f"DELETE FROM sessions WHERE agent = ? AND slot = ? AND id IN ({marks})", (agent, slot, *ids))
    return ids


def in_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn` in one transaction (one durable commit): all of it or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    return result


def scrub_wal(db: sqlite3.Connection) -> bool:
    """Copies the WAL into the database and truncates it, so rows just deleted (their pages zeroed
    by secure_delete) are left in no old frame of the `-wal` file either: a fleet-wide forget
    deleted a badge holder's sessions and left them readable there on the card. False when
    another program's read kept the WAL (its old frames stay until that read ends; not waited for:
    this runs on the kiosk's loop)."""
    try:
        wait_ms = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
        db.execute("PRAGMA busy_timeout = 0")
        try:
            return not db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            db.execute(f"PRAGMA busy_timeout = {wait_ms}")
    except sqlite3.Error:  # the rows are deleted and committed; a failing disk is the next write's to find
        return False
