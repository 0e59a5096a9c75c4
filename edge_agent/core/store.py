"""SessionStore: the device's durable memory of conversations, so a press can resume the last one.

SQLite in `state_dir` with WAL and synchronous=FULL: a session id returned by `record_start`
survives a power cut right after the call. Sessions are filed per (agent, slot) so several
people or buttons can each keep their own thread; only the newest `keep_sessions` are kept.

An SD card fails in more ways than one, and only one of them is corruption:
- a file SQLite calls corrupt (SQLITE_CORRUPT, SQLITE_NOTADB) or that fails `PRAGMA quick_check`
  is moved aside with a timestamp and a fresh store is created;
- anything else (a lock held by another process, a full disk, an I/O error, a state dir mounted
  read-only) leaves the files alone: the store carries on in memory (seeded with what can still
  be read), `fault` says why, and `retry` tries the disk again every `retry_s`, writing back what
  happened meanwhile. A storage fault never stops the kiosk; it only costs resume across restarts.

Files are private whatever the umask: the state dir is created 0700, the database (and so its
WAL and SHM files, which SQLite creates with the database's mode) 0600.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.core import storerows
from edge_agent.core.protocol import SESSION_ID_CHARS
from edge_agent.core.slots import is_label
from edge_agent.core.statefiles import DB_NAME as DB_NAME
from edge_agent.core.statefiles import OWN_FILES, file_id, give_to_dir_owner, make_private, make_private_dir
from edge_agent.core.storedsession import COLUMNS, FILED, SOUND_ROW, UPSERT_REFILED, Row
from edge_agent.core.storedsession import StoredSession as StoredSession
from edge_agent.core.storefaults import CORRUPT_COPIES_KEPT as CORRUPT_COPIES_KEPT
from edge_agent.core.storefaults import CorruptFile, corrupt_copies, move_aside, remove_corrupt_copies, why
from edge_agent.core.storefaults import is_corruption as is_corruption
from edge_agent.core.storeread import salvage
from edge_agent.core.storerows import UNDECODABLE, carried_rows, create_schema, delete_slot, drop_undecodable, drop_unsound, in_transaction, mark, merge_pointer, newest_order, prune, set_mark
from edge_agent.core.storerows import scrub_wal as scrub_wal
from edge_agent.errors import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

KEEP_SESSIONS = 1000
"""Default bound on stored sessions (`session.keep_sessions`); older ones are deleted."""
RETRY_S = 60.0
"""Default seconds between attempts to get back to the disk after a fault (`device.store_retry_s`)."""
BUSY_TIMEOUT_S = 0.5
"""How long a write waits for another process's lock. Writes run on the kiosk's event loop, so
this is short: past it the store carries on in memory instead of stalling the audio."""
SCRUB_EVERY_S = 0.1
"""How often a patient forget (`sessions --forget`) tries its checkpoint again while another program reads the store."""
class SessionStore:
    """Durable list of sessions; every write is committed before the call returns, or kept in
    memory while the disk is unusable (see `fault`). Reads and writes never raise for a storage
    fault; StoreError is left for failures of the in-memory fallback itself."""

    def __init__(self, state_dir: Path, keep_sessions: int = KEEP_SESSIONS, retry_s: float = RETRY_S, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self.keep_sessions = keep_sessions
        self.retry_s = retry_s
        self.busy_timeout_s = busy_timeout_s
        self.recovered_from: Path | None = None
        """Where a corrupt state file was moved on open, for the caller to report."""
        self.fault: str | None = None
        """Why the store is running in memory (None: on disk)."""
        self.wipe_pending = False
        """`forget` ran while the disk was unusable: the disk copy is wiped when it comes back."""
        self.scrub_pending = False
        """The last forget deleted the rows but could not scrub the card (a reader held the WAL)."""
        self._slots_pending: list[tuple[str, str, tuple[str, ...] | None]] = []
        """`forget_slot`s done only in memory: done on disk too when it comes back."""
        self._retry_at = 0.0
        self._disk_file: tuple[int, int] | None = None
        """(device, inode) of the database file opened: one removed or replaced is not written to."""
        db = self._attach()
        self._db = db if db is not None else self._memory(salvage(self.path, self.keep_sessions, self.busy_timeout_s))

    # ------------------------------------------------------------------ opening
    def _attach(self) -> sqlite3.Connection | None:
        """The disk database, moved aside first if corrupt; None (and `fault` set) if unusable."""
        try:
            return self._open_disk()
        except (sqlite3.Error, OSError, CorruptFile) as exc:
            if not is_corruption(exc):
                self._fail(exc)
                return None
            try:
                self.recovered_from = self._move_aside(exc)
                return self._open_disk()
            except (sqlite3.Error, OSError, CorruptFile) as exc2:
                self._fail(exc2, "corrupt and cannot be replaced: ")
                return None

    def _open_disk(self) -> sqlite3.Connection:
        make_private_dir(self.dir)
        make_private(self.dir, 0o700, only_holding=OWN_FILES)
        try:  # made new here (0600: SQLite then gives WAL/SHM this mode), never through a link
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # there already (a link there, dangling or not, fails below: ELOOP)
            os.close(os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC))
        else:  # as root a link to a missing file was "fresh", created where it pointed and chowned
            try:
                give_to_dir_owner(fd, self.dir)
            finally:
                os.close(fd)
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(str(self.path) + suffix), 0o600)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._disk_file = file_id(self.path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")  # deleted and pruned rows are zeroed, not left behind
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise CorruptFile(f"quick_check: {row[0] if row else 'no answer'}")
            create_schema(db)
            drop_unsound(db)
        except BaseException:
            db.close()
            raise
        return db

    def _memory(self, carried: tuple[list[Row], int]) -> sqlite3.Connection:
        """`carried`: rows (COLUMNS, filed, replaces and own each) and the disk's mark of rows written while
        the clock was behind (`storerows.carried_rows`): the write order, the mark and what a fresh
        start replaces go along (without it, the replaced session heard again was moved past it)."""
        rows, marked = carried
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        create_schema(db)
        # oldest first: memory's rowids run the disk's way (ties of a last start, and of filed, go by rowid)
        db.executemany(f"INSERT OR IGNORE INTO sessions ({COLUMNS}, filed, replaces, own) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", reversed(rows))
        set_mark(db, marked)
        drop_unsound(db)  # what a read-only disk held: compared with by every write, as on disk
        return db

    def _fail(self, exc: BaseException, prefix: str = "") -> None:
        self.fault = f"{self.path}: {prefix}{why(exc)}"
        self._retry_at = time.monotonic() + self.retry_s
        log.debug("session store unusable: %s", self.fault)

    def _move_aside(self, exc: BaseException) -> Path:
        return move_aside(self.path, exc)

    def corrupt_copies(self) -> list[Path]:
        """Moved-aside databases, newest first (each may have its -wal and -shm beside it)."""
        return corrupt_copies(self.path)

    # ------------------------------------------------------------------ fault handling
    def retry(self, now: float | None = None) -> bool:
        """After a fault, tries the disk again once `retry_s` has passed since the last try.
        On success writes back what was recorded in memory (after a pending wipe) and returns True."""
        now = time.monotonic() if now is None else now
        if self.fault is None or now < self._retry_at:
            return False
        self._retry_at = now + self.retry_s
        db = self._attach()
        if db is None:
            return False
        try:
            if self.wipe_pending:
                self._wipe(db)
            db.execute("BEGIN IMMEDIATE")  # one transaction: all of it or none
            for pending in self._slots_pending:
                delete_slot(db, *pending)
            # in the order memory filed them, each filed again after what the disk holds (rows
            # without a number, an older version's, keep the disk's): with the clock behind, a
            # session recorded in memory landed with no number and was the first pruned
            rows = self._db.execute(f"SELECT {COLUMNS}, filed, replaces, own FROM sessions WHERE {SOUND_ROW} ORDER BY filed IS NOT NULL, filed, rowid").fetchall()
            db.executemany(UPSERT_REFILED, rows)
            if mark(self._db):  # renumbered: all of it counts as written behind
                set_mark(db, db.execute("SELECT coalesce(max(filed), 0) FROM sessions").fetchone()[0])
            self._prune(db)
            db.execute("COMMIT")
            if self._slots_pending:
                scrub_wal(db)  # the forgets done in memory meanwhile: none of theirs left in the WAL
                self._remove_corrupt_copies()  # (tried at the forget, on a disk that may have refused)
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.rollback()
            db.close()
            self._fail(exc)
            return False
        self._db.close()
        self._db, self.fault, self.wipe_pending = db, None, False
        self._slots_pending.clear()
        log.info("session store back on disk: %s", self.path)
        return True

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn` on the database; a disk failure moves the store to memory and runs it there."""
        self._check_file()
        try:
            return fn(self._db)
        except sqlite3.Error as exc:
            if str(exc).startswith(UNDECODABLE) and drop_undecodable(self._db):
                return self._run(fn)  # a row no read could take is gone: the disk is sound
            if self.fault is not None:
                raise StoreError(f"session store failed in memory: {exc}") from None
            self._to_memory(exc, again_now=is_corruption(exc))  # corrupt: the next retry moves the file aside
            return fn(self._db)

    def _to_memory(self, exc: BaseException, again_now: bool) -> None:
        """The store goes on in memory with what the disk's connection can still read (`fault` set)."""
        self._fail(exc)
        if again_now:
            self._retry_at = 0.0
        try:
            carried = carried_rows(self._db, self.keep_sessions)
        except sqlite3.Error:
            carried = [], 0
        self._db.close()
        self._db = self._memory(carried)

    def _check_file(self) -> None:
        """A database file removed or replaced while open (the state dir deleted, `rm` of the store
        to reset it) is left for memory, and the next retry makes a new one and writes it all back:
        writes went on into the deleted file without a fault, every session since was lost at the
        next start, and the kiosk reported its store as fine."""
        if self.fault is not None or self._disk_file is None:
            return
        try:
            now = file_id(self.path)
        except OSError:  # a state dir made unsearchable, an I/O error: SQLite's own writes tell
            return
        if now != self._disk_file:
            self._to_memory(OSError(errno.ENOENT, "the store file was removed or replaced while open"), again_now=True)

    def close(self) -> None:
        """Closes the store; one held in memory after a fault tries the disk once more first (a
        stop within `retry_s` of the disk coming back lost every session kept meanwhile)."""
        if self.fault is not None:
            self.retry(now=math.inf)
        self._db.close()

    # ------------------------------------------------------------------ sessions
    def record_start(self, session_id: str, agent: str, slot: str, continued_from: str | None, started_at: float | None = None, replaces: str | None = None) -> None:
        """Files a session the moment the agent names it (`onready`); durable on return.
        An id the store already has keeps its start and what it continued: it is marked as
        active again, so the chain of continuations is never rewritten and never loops.
        `replaces`: a fresh start's predecessor, kept as a shared one's (`storerows.merge_pointer`:
        heard again after a restart, clamped to a later now, it was moved past the fresh start)."""
        at = time.time() if started_at is None else started_at
        cont = None if continued_from == session_id else continued_from
        replaced = None if cont is not None or replaces == session_id else replaces

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO sessions ({COLUMNS}, filed, replaces, own) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, {FILED}, ?, 1) "
                f"ON CONFLICT(id) DO UPDATE SET resumed_at = excluded.started_at, ended_at = NULL, end_reason = NULL, filed = {FILED}, own = 1",
                (session_id, agent, slot, cont, at, replaced),
            )
            self._prune(db)

        self._run(write)

    def record_end(self, session_id: str, reason: str, ended_at: float | None = None) -> None:
        at = time.time() if ended_at is None else ended_at
        self._run(lambda db: db.execute("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?", (at, reason, session_id)))

    def _prune(self, db: sqlite3.Connection) -> None:
        prune(db, self.keep_sessions)

    def newest(self, agent: str, slot: str = "default") -> StoredSession | None:
        """The session a short press would continue for this agent and slot: the latest start, or
        while the clock is or was behind the rows, the last written (`storerows.newest_order`).
        None when its id is none an agent gives (`SESSION_ID_CHARS`, a hand edit): continued, a
        newline or escape codes in it went to the journal raw (a forged line) and to the server."""
        rows = self._query(f"AND agent = ? AND slot = ? ORDER BY {self._run(newest_order)} LIMIT 1", (agent, slot))
        return rows[0] if rows and SESSION_ID_CHARS.fullmatch(rows[0].id) else None

    def get(self, session_id: str) -> StoredSession | None:
        """The stored session with this id, if any."""
        rows = self._query("AND id = ?", (session_id,))
        return rows[0] if rows else None

    def recent(self, limit: int = 100) -> list[StoredSession]:
        """All sessions, newest first, as a press ranks a slot's (`storerows.newest_order`)."""
        return self._query(f"ORDER BY {self._run(newest_order)} LIMIT ?", (limit,))

    # ------------------------------------------------------------------ shared with a fleet
    def own_newest(self, limit: int) -> list[tuple[StoredSession, str | None]]:
        """The slots whose newest session was started or resumed here (`own`), with what each
        replaces, the latest `limit` written first: what this kiosk published last, which a
        restart must publish again (held offline, lost with paho's queue, the fleet never heard
        of the person's conversation here). Rows with an id, or a slot, no agent or operator gives
        (a hand edit) are left out, as `newest` leaves them: they went out to the whole fleet."""
        rows: list[Any] = self._run(lambda db: storerows.own_newest_rows(db, limit))
        pairs = [(StoredSession(*row[:-1]), None if row[-1] is None else str(row[-1])) for row in rows]
        return [(s, r) for s, r in pairs if is_label(s.slot) and all(v is None or SESSION_ID_CHARS.fullmatch(v) for v in (s.id, s.continued_from, r))]

    def merge_shared(self, pointers: Sequence[tuple[str, str, str, str | None, float, float | None] | tuple[str, str, str, str | None, float, float | None, str | None]]) -> int:
        """Files sessions other kiosks shared, (agent, slot, id, continued_from, started_at,
        ended_at[, replaces]) each, in one transaction: a pointer is kept only when it is newer than what
        this store has for its (agent, slot) (the latest start wins, ties by the larger id, and one
        continuing the newest is newer whatever the clocks say: `storerows.merge_pointer`); a
        known id only has its last start and its end moved forward. Pruned to `keep_sessions`
        like every write. Returns how many were filed."""

        def merge(db: sqlite3.Connection) -> int:
            order = newest_order(db)  # once a batch: pointers are clamped to now, the mark stays
            filed = sum(merge_pointer(db, *p[:6], replaces=p[6] if len(p) > 6 else None, order=order) for p in pointers)
            self._prune(db)
            return filed

        return self._run(lambda db: in_transaction(db, merge))

    def slots(self) -> list[tuple[str, str]]:
        """Every (agent, slot) with a stored session."""
        return self._run(lambda db: [(str(a), str(s)) for a, s in db.execute("SELECT DISTINCT agent, slot FROM sessions")])

    def forget_slot(self, agent: str, slot: str, sessions: tuple[str, ...] | None = None) -> int:
        return len(self.forget_slots([(agent, slot, sessions)])[0])

    def forget_slots(self, slots: list[tuple[str, str, tuple[str, ...] | None]]) -> list[tuple[str, ...]]:
        """Deletes each (agent, slot)'s sessions (`storerows.delete_slot`), in one transaction: a
        fleet-wide forget reaching this kiosk (a durable commit each held the event loop for
        seconds at a forget of thousands of slots); the ids deleted of each. With the disk unusable, on
        disk too as soon as `retry` gets it back (a badge holder who asked to be forgotten was
        continued again once the card came back). The moved-aside `.corrupt-*` copies go too: they
        may hold those slots' sessions and cannot be read to delete rows from (a badge holder who
        asked to be forgotten stayed in one until a full forget)."""
        deleted = self._run(lambda db: in_transaction(db, lambda db: [delete_slot(db, *where) for where in slots]))
        if self.fault is not None:
            self._slots_pending.extend(slots)
        elif any(deleted):
            scrub_wal(self._db)  # not only the database's pages: the WAL's old frames held them too
        if slots:  # a store moved aside may hold them too (it cannot be read to delete rows from)
            self._remove_corrupt_copies()
        return deleted

    def _query(self, tail: str, args: tuple[object, ...]) -> list[StoredSession]:
        """Rows of sound types only (`SOUND_ROW`): `tail` is a condition ("AND ..."), an order, a limit."""
        sql = f"SELECT {COLUMNS} FROM sessions WHERE {SOUND_ROW} {tail}"
        return self._run(lambda db: [StoredSession(*row) for row in db.execute(sql, args)])

    def forget(self, scrub_wait_s: float = 0.0) -> int:
        """Deletes every session and every moved-aside copy (the operator's privacy switch);
        returns how many sessions went. With the disk unusable, the in-memory copy goes now
        and the disk copy as soon as `retry` gets the disk back (`wipe_pending`). Up to
        `scrub_wait_s` for another program's read to end (not on the kiosk's loop), else
        `scrub_pending`."""
        self._check_file()  # not the wipe of a deleted file: the one there now is wiped when retried
        if self.fault is None:
            try:
                return self._wipe(self._db, scrub_wait_s)
            except sqlite3.Error:
                pass  # _run below moves to memory and records the wipe as pending

        def delete_all(db: sqlite3.Connection) -> int:
            count = int(db.execute("DELETE FROM sessions").rowcount)
            set_mark(db, 0)  # as `_wipe`: the write order restarts at 1, under the old mark
            return count

        count = self._run(delete_all)
        self.wipe_pending = self.wipe_pending or self.fault is not None
        self._remove_corrupt_copies()
        return count

    def _wipe(self, db: sqlite3.Connection, scrub_wait_s: float = 0.0) -> int:
        count = int(db.execute("DELETE FROM sessions").rowcount)
        set_mark(db, 0)  # no row written while the clock was behind is left (storerows.prune)
        # another program reading the store (`edge-agent sessions`, a backup) keeps the checkpoint
        # from copying the zeroed pages back and truncating the WAL: the ids stayed on the card
        # while forget said it was done (a helper's attack). Tried again while patient, then said.
        until = time.monotonic() + scrub_wait_s
        while (busy := db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]) and time.monotonic() < until:
            time.sleep(SCRUB_EVERY_S)
        self.scrub_pending = bool(busy)
        if busy:
            log.warning("session store: sessions forgotten, but another program reading %s keeps their old pages on the card until it closes; forget again then", self.dir / DB_NAME)
        try:
            db.execute("VACUUM")  # needs free space; secure_delete already zeroed the rows
        except sqlite3.OperationalError as exc:
            log.warning("session store: VACUUM after forget failed (%s); the rows are deleted and zeroed", exc)
        self._remove_corrupt_copies()
        return count

    def _remove_corrupt_copies(self) -> None:
        remove_corrupt_copies(self.path)
