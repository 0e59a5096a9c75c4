"""The status LED and the earcons tell the visitor the truth (a helper's review): the whole daemon
in process, its LED on gpiozero's MockFactory pins, the agent the loopback simulator."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, LateMic, kiosk_settings, mock_pins, wait_for
from gpiozero.pins.mock import MockFactory

from edge_agent.audio.devices import FileSink
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import AgentSimulator, SimulatorThread
from edge_agent.service import audio_watch

LED_PIN = 27


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    with mock_pins() as factory:
        yield factory


def _changes(pin: Any, window_s: float) -> int:
    """How many times the pin changed level within the next `window_s` (a blink changes often)."""
    start = len(pin.states)
    time.sleep(window_s)
    return len(pin.states) - start


def _lit_off(pin: Any) -> bool:
    """The LED is dark: driven low, or let go (an input pin drives no LED; the mock keeps the
    last level it was driven to, a real pin does not light the LED)."""
    return bool(pin.function == "input" or pin.state == 0)


def test_the_led_shows_a_missing_microphone_and_clears_when_it_is_back(pins: MockFactory, tmp_path: Path, sim: AgentSimulator) -> None:
    """A kiosk whose microphone is gone looked idle (LED dark): a visitor pressed, the LED went to
    listening and nothing they said reached anyone. While the microphone is gone the LED shows
    the error blink; when it is back, the idle LED again."""
    settings = kiosk_settings(tmp_path, sim.url, led={"pin": LED_PIN})
    missing = tmp_path / "usb-mic.wav"
    settings = replace(settings, audio=replace(settings.audio, input=f"file:{missing}"))
    pin = pins.pin(LED_PIN)
    with KioskThread(settings, wait_ready=False, source=LateMic(missing)) as k:
        wait_for(lambda: k.kiosk.audio_watch.stalled_at is not None, 10, "the microphone reported gone")
        assert k.state == c.IDLE
        assert _changes(pin, 1.0) >= 4, "the LED does not show that the microphone is gone"
        (tmp_path / "mic.wav").replace(missing)
        wait_for(k.kiosk.ready.is_set, 20, "the microphone back")
        wait_for(lambda: k.kiosk.audio_watch.stalled_at is None, 10, "the recovery reported")
        time.sleep(0.3)
        assert pin.state == 0 and _changes(pin, 0.6) == 0, "the LED still blinks with the microphone back"


def _earcons_played(k: KioskThread) -> list[str]:
    """The earcons the daemon queues on its speaker from now on, by name, in order."""
    played: list[str] = []
    get = k.kiosk.earcons.get

    def record(name: str) -> bytes:
        played.append(name)
        return get(name)

    k.kiosk.earcons.get = record  # type: ignore[method-assign]
    return played


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("agent", ["unreachable", "refusing"])
def test_a_press_that_fails_blinks_the_error_and_plays_the_error_earcon_never_the_ready_one(pins: MockFactory, tmp_path: Path, agent: str) -> None:
    """Held as it is (passes today): no agent listening on the port, or one refusing the key (HTTP 403)."""
    with contextlib.ExitStack() as stack:
        if agent == "refusing":
            endpoint = stack.enter_context(SimulatorThread(reject_status=403)).url
        else:
            endpoint = f"ws://127.0.0.1:{_free_port()}/ws"
        _failed_press(pins, tmp_path, endpoint)


def _failed_press(pins: MockFactory, tmp_path: Path, endpoint: str) -> None:
    settings = kiosk_settings(tmp_path, endpoint, led={"pin": LED_PIN}, session={"reconnect_window_s": 0.0})
    pin = pins.pin(LED_PIN)
    with KioskThread(settings) as k:
        played = _earcons_played(k)
        k.press()
        k.wait_state(c.ERROR, 15)
        assert _changes(pin, 0.8) >= 4
        k.wait_state(c.IDLE, 15)
        time.sleep(0.2)
        assert pin.state == 0
    assert played[0] == "press" and "error" in played and "ready" not in played, played


@pytest.mark.parametrize("when", [c.LISTENING, c.ERROR])
def test_the_led_is_dark_once_the_kiosk_has_stopped(pins: MockFactory, tmp_path: Path, sim: AgentSimulator, when: str) -> None:
    """SIGTERM (`stop`) in the middle of a conversation or of an error: a kiosk left glowing
    'listening' while the service is down lies to the next visitor."""
    endpoint = sim.url if when == c.LISTENING else f"ws://127.0.0.1:{_free_port()}/ws"
    settings = kiosk_settings(tmp_path, endpoint, led={"pin": LED_PIN}, session={"reconnect_window_s": 0.0})
    pin = pins.pin(LED_PIN)
    with KioskThread(settings) as k:
        k.press()
        k.wait_state(when, 15)
        time.sleep(0.3)
    assert k.result == 0
    assert _lit_off(pin), pin.states[-5:]


class GoneSpeaker(FileSink):
    """The null speaker, unplugged while `gone` is set (its device stops calling back)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.gone = threading.Event()

    def alive(self, stall_s: float) -> bool:
        return not self.gone.is_set()


def test_the_led_shows_a_lost_speaker_and_clears_when_it_is_back(pins: MockFactory, tmp_path: Path, sim: AgentSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kiosk whose speaker is gone cannot answer anyone: the LED said idle (dark)."""
    monkeypatch.setattr(audio_watch, "AUDIO_RETRY_S", 0.2)
    settings = kiosk_settings(tmp_path, sim.url, led={"pin": LED_PIN})
    pin = pins.pin(LED_PIN)
    speaker = GoneSpeaker()
    with KioskThread(settings, sink=speaker) as k:
        speaker.gone.set()
        wait_for(lambda: k.kiosk.speaker_watch.watch.stalled_at is not None, 10, "the speaker reported gone")
        assert k.state == c.IDLE
        assert _changes(pin, 1.0) >= 4, "the LED does not show that the speaker is gone"
        speaker.gone.clear()
        wait_for(lambda: k.kiosk.speaker_watch.watch.stalled_at is None, 10, "the recovery reported")
        time.sleep(0.3)
        assert pin.state == 0 and _changes(pin, 0.6) == 0, "the LED still blinks with the speaker back"


@pytest.mark.parametrize("how", ["press", "agent", "link_lost", "idle", "command"])
def test_every_end_leaves_the_led_dark_and_no_earcon_after_the_ended_one(pins: MockFactory, tmp_path: Path, sim_thread: SimulatorThread, how: str) -> None:
    """Held as it is (passes today): the end of a conversation the agent was speaking in, by a
    press, the agent, a lost link, the idle timeout or a command: the LED dark, one `ended`
    earcon and nothing after it."""
    sim = sim_thread.sim
    settings = kiosk_settings(tmp_path, sim.url, led={"pin": LED_PIN}, session={"reconnect_window_s": 0.0, "idle_timeout_s": 1.0})
    pin = pins.pin(LED_PIN)
    with KioskThread(settings) as k:
        played = _earcons_played(k)
        k.press()
        k.wait_state(c.LISTENING)
        sim_thread.call(sim.say(bytes(32000 * 3)))  # 3 s of the agent's voice: speaking
        k.wait_state(c.SPEAKING, 5)
        if how == "press":
            k.press()
        elif how == "agent":
            sim_thread.call(sim.hang_up())
        elif how == "link_lost":
            sim_thread.call(sim.drop())
        elif how == "command":
            k.send(c.End("command"))
        k.wait_state(c.IDLE, 15)
        time.sleep(0.5)
        assert pin.state == 0 and _changes(pin, 0.6) == 0, (how, pin.states[-6:])
        time.sleep(1.0)  # a late earcon (a reconnect's, an error's) would come by now
    assert played[-1] == "ended" and played.count("ended") == 1 and "error" not in played, (how, played)
