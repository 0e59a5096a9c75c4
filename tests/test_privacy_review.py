"""A helper's review of visitors' privacy on the kiosk (2026-12-06): each test failed before its fix."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for
from test_share import _cmd, _converse, _kiosk, _newest

from edge_agent.core import conversation as c
from edge_agent.core.store import DB_NAME, SessionStore
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.fleet.pointer import Forgotten, forgotten_topic


def _on_the_card(state_dir: Path, needle: bytes) -> list[str]:
    """The files of the state dir holding `needle`, read byte for byte (the -wal included)."""
    return [p.name for p in sorted(state_dir.iterdir()) if p.is_file() and needle in p.read_bytes()]


def test_a_fleet_wide_forget_leaves_no_forgotten_session_in_the_wal(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """A badge holder asks to be forgotten at another kiosk: its retained forget reaches this one,
    which deleted the person's sessions but left every page that held them in the `-wal` file
    (secure_delete zeroes the database's pages, not the WAL's old frames): the ids, the slot key
    and the times stayed readable on the card, until a checkpoint and enough later writes wrapped
    the WAL over them, for weeks on a quiet kiosk, or for ever if it is unplugged first."""
    obs = Observer(broker.port)
    slot = "visitor-7"
    try:
        with _kiosk(tmp_path, "kiosk-a", sim, broker.port) as a:
            session = _converse(a, sim, obs, "kiosk-a", slot)
            sid = session.session_id
            assert _newest(a, slot).id == sid
            state = tmp_path / "kiosk-a" / "state"
            assert _on_the_card(state, sid.encode()), "the session is filed on disk"
            forget = Forgotten(2e9, "kiosk-b", (sid,)).to_wire()
            obs.client.publish(forgotten_topic("edge-agent", "agent-1", slot), forget, qos=1, retain=True)
            wait_for(lambda: _newest(a, slot) is None, 10, "the fleet-wide forget heard")
            assert a.state == c.IDLE
            left = a.on_loop(lambda: _on_the_card(state, sid.encode()))  # while the kiosk runs: what a pulled card holds
            assert left == [], f"the forgotten session {sid} is still in {left}"
            _cmd(obs, "kiosk-a", action="ping")
    finally:
        obs.close()


def test_the_dirs_made_above_the_state_dir_are_private_whatever_the_umask(tmp_path: Path, sim: AgentSimulator) -> None:
    """A kiosk run by hand under umask 0000 with `state_dir` in dirs that did not exist yet (the
    first run of `state_dir = "~/kiosk/lobby/state"`): the state dir was 0700, but the dirs made
    above it were 0777. In a world-writable dir any local user may rename the state dir away and
    put their own in its place, holding a world-readable `sessions.sqlite3` of theirs: the kiosk,
    which tightens only files it owns, then filed every visitor's session into it."""
    state = tmp_path / "srv" / "kiosk" / "state"
    old = os.umask(0)
    try:
        with KioskThread(kiosk_settings(tmp_path, sim.url, device={"state_dir": str(state)})):
            pass
    finally:
        os.umask(old)
    made = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in (state, state.parent, state.parent.parent)}
    assert made["srv/kiosk/state"] == 0o700
    assert all(mode & 0o022 == 0 for mode in made.values()), {k: oct(v) for k, v in made.items()}


def test_a_slot_forgotten_while_the_card_was_busy_leaves_nothing_in_the_wal_once_it_is_back(tmp_path: Path) -> None:
    """The same forget reaching a kiosk whose card was busy (the store ran in memory): `retry`
    deleted the slot's rows on disk when the card came back, and their old frames stayed in the
    `-wal` file with the badge holder's session id and slot key."""
    store = SessionStore(tmp_path, busy_timeout_s=0.05, retry_s=1.0)
    store.record_start("alice-session-1", "agent", "b-alice0123456789", None, 1000.0)
    store.record_start("s-default", "agent", "default", None, 1001.0)
    blocker = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer, a stuck card: the store goes to memory
    store.record_start("s-default-2", "agent", "default", None, 1002.0)
    assert store.fault is not None
    assert store.forget_slot("agent", "b-alice0123456789") == 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert store.retry(now=10**9) and store.fault is None
    try:
        for needle in (b"alice-session-1", b"b-alice0123456789"):
            assert _on_the_card(tmp_path, needle) == [], needle
        assert store.newest("agent", "default").id == "s-default-2"  # type: ignore[union-attr]
    finally:
        store.close()
