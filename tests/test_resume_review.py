"""Hostile review of session continuation (NAME=resume): the real daemon killed -9 at various
moments and started again; the next press must continue the session the visitor was in."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import DATA, DaemonProcess, read_wav, toml_dump, wait_for, write_wav

from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import AgentSimulator


def _config(tmp_path: Path, sim: AgentSimulator) -> Path:
    clip = write_wav(tmp_path / "clip.wav", read_wav(DATA / "kiosk_dev_quiet.wav")[: 12 * 32000])
    cfg = tmp_path / "edge-agent.toml"
    cfg.write_text(
        toml_dump(
            {
                "device": {"id": "kiosk-resume", "state_dir": str(tmp_path / "state")},
                "agent": {"endpoint": sim.url, "agent_id": "agent-42"},
                "session": {"idle_timeout_s": 120.0},
                "audio": {"input": f"file:{clip}", "output": f"file:{tmp_path / 'speaker.wav'}", "frame_ms": 30},
                "button": {"source": "keyboard"},
            }
        )
    )
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["ready", "speaking", "ending"])
def test_a_kill_9_at_any_moment_of_a_conversation_is_continued_after_the_restart(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess], moment: str) -> None:
    cfg = _config(tmp_path, sim)
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"ready: device kiosk-resume")
    mark = d.press()
    d.wait_log(r"state: listening", after=mark)
    first = sim.sessions[0]
    if moment == "speaking":
        d.wait_log(r"state: speaking", after=mark)
    elif moment == "ending":
        d.press()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)

    d2 = DaemonProcess(cfg)
    daemons.append(d2)
    d2.wait_log(r"ready: device kiosk-resume")
    mark = d2.press()
    d2.wait_log(r"state: listening", after=mark)
    wait_for(lambda: len(sim.sessions) >= 2, 10, "a second session")
    assert sim.sessions[1].initiate["data"].get("session_continuation") == {"session_id": first.session_id}


def _press_and_initiate(d: DaemonProcess, sim: AgentSimulator) -> dict[str, object]:
    """A short press on a started daemon: the `initiate` the simulator got for it (the
    conversation then ended by a second press)."""
    before = len(sim.sessions)
    mark = d.press()
    d.wait_log(r"state: listening", after=mark)
    wait_for(lambda: len(sim.sessions) > before, 10, "the press's session")
    mark = d.press()
    d.wait_log(r"state: idle", after=mark)
    return sim.sessions[before].initiate["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("ahead_s", [3600.0, 10 * 365 * 86400.0], ids=["an_hour", "ten_years"])
def test_a_restart_while_the_clock_is_behind_continues_the_visitor_who_just_talked(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess], ahead_s: float) -> None:
    """A Pi without a battery clock came back from a power cut an hour behind: its newest stored
    session X lies an hour ahead, so the next visitor's conversation Z starts fresh, as the README
    says. Then the daemon restarts (kill -9: a crash, the watchdog, another power cut) before NTP
    answers. The next press must continue Z, the conversation the store wrote last; the store
    ranked by the wall clock, X stayed the slot's newest, and every press after every restart
    started fresh again (the visitor's conversation lost each time), for as long as the clock
    stayed behind that session: ten years for one stored while a bad time source ran ten years
    ahead."""
    cfg = _config(tmp_path, sim)
    store = SessionStore(tmp_path / "state")
    store.record_start("X-earlier-visitor", "agent-42", "default", None, started_at=time.time() + ahead_s)
    store.close()
    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"ready: device kiosk-resume")
    assert "session_continuation" not in _press_and_initiate(d, sim)  # X's age cannot be told: fresh
    z = sim.sessions[0].session_id
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)

    d2 = DaemonProcess(cfg)
    daemons.append(d2)
    d2.wait_log(r"ready: device kiosk-resume")
    assert _press_and_initiate(d2, sim).get("session_continuation") == {"session_id": z}


def test_a_reboot_once_ntp_set_the_clock_right_does_not_continue_the_visitor_before(tmp_path: Path, sim: AgentSimulator, daemons: list[DaemonProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    """Visitor A talked two hours ago (X, the clock right). A power cut; the Pi booted three hours
    behind and visitor B talked (Z, written after X, stamped earlier). Another reboot, the clock
    right now: the next press must continue Z, B's conversation, the last the kiosk held. Ranked
    by the wall clock, X was the newest and the press handed A's conversation to whoever stood
    there (the store's own mark of a clock that was behind said otherwise)."""
    cfg = _config(tmp_path, sim)
    true_now = time.time()
    store = SessionStore(tmp_path / "state")
    store.record_start("X-visitor-a", "agent-42", "default", None, started_at=true_now - 7200.0)
    store.record_end("X-visitor-a", "button", ended_at=true_now - 7100.0)
    monkeypatch.setattr(time, "time", lambda: true_now - 3 * 3600.0 + 3000.0)  # the boot three hours behind
    store.record_start("Z-visitor-b", "agent-42", "default", None, started_at=true_now - 3 * 3600.0 + 3000.0)
    store.record_end("Z-visitor-b", "button", ended_at=true_now - 3 * 3600.0 + 3100.0)
    store.close()
    monkeypatch.undo()

    d = DaemonProcess(cfg)
    daemons.append(d)
    d.wait_log(r"ready: device kiosk-resume")
    assert _press_and_initiate(d, sim).get("session_continuation") == {"session_id": "Z-visitor-b"}
