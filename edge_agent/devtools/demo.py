"""`edge-agent demo`: the whole appliance against the bundled agent simulator, on any machine.

The keyboard is the button (Enter = press, l = long press, q = quit). With no terminal, or with
`--auto`, a script presses for you and tells a story it then checks: conversation 1 is a new
session, the agent answers, it ends; conversation 2 continues conversation 1. Every step is
checked against what really happened (the kiosk's state, the simulator's record of the
`initiate` it got, the session store), said on one line, and the demo exits 1 when the story did
not happen. Every wait is bounded, so the demo cannot hang.

Each run starts from an empty demo store (`~/.local/state/edge-agent-demo`), as its simulator
starts with no memory: a second run tells the same story. A `--state-dir` of your own is never
emptied; when it holds sessions, the scripted first press is a long one (fresh session).
The scripted run plays the bundled recording (LibriVox / CMU Sphinx speech) unless `--input`
says otherwise; the interactive one uses the default microphone when PyAudio finds one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.audio.devices import open_wav_16k_mono
from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.core.statefiles import make_private_dir
from edge_agent.core.store import SessionStore
from edge_agent.devtools.simulator import SimulatorThread
from edge_agent.errors import AudioError, ConfigError, UsageError
from edge_agent.hardware.button import KeyboardButton, NoButton
from edge_agent.service.daemon import Kiosk

log = logging.getLogger("edge_agent.devtools.demo")

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEMO_RECORDING = DATA_DIR / "demo_speech.wav"
DEMO_STATE_DIR = Path.home() / ".local/state/edge-agent-demo"
READY_S = 15.0
START_S = 10.0
REPLY_S = 40.0
END_S = 5.0
STORY_S = 2 * (START_S + REPLY_S + END_S) + READY_S + 10.0
"""The scripted demo's bound: every step's own bound, plus slack."""
LIVE = (c.CONNECTING, c.LISTENING, c.SPEAKING)


class DemoFailed(Exception):
    """A step of the scripted story did not happen; the message says which and what to try."""


def audio_spec(text: str, want_input: bool) -> str:
    """`file:PATH.wav`, `loop:PATH.wav` (input), `null` (output), a device name or index, or a
    plain path to a .wav (read as `file:`). A file to read is opened now, so a wrong one fails
    at once with the reason instead of the demo waiting for a microphone that never opens."""
    given = text
    if not text.startswith(("file:", "loop:")) and (text.lower().endswith(".wav") or os.sep in text):
        text = f"file:{text}"
    if want_input and text.startswith(("file:", "loop:")):
        if not text[5:]:
            raise AudioError(f"--input {given}: give the recording to play, {text}PATH.wav")
        try:
            open_wav_16k_mono(text[5:]).close()
        except AudioError as exc:  # `cannot read x.wav` named no option (an audio error: exit 1, as before)
            raise AudioError(f"--input {given}: {exc}") from None
    elif not want_input and text.startswith("loop:"):
        raise AudioError(f"--output {text}: loop: is for inputs; use file:PATH.wav, null or a device")
    return text


def demo_state_dir(state_dir: Path | None) -> None:
    """Makes the demo's state dir (`--state-dir`, else its own), or refuses it in one line naming
    the option: a file there was `config error: device.state_dir`, exit 78, about a config the
    demo's user never wrote, and a dir it could not make ran the story on sessions kept in memory
    while it said "checked in the simulator and the store"."""
    target = state_dir or DEMO_STATE_DIR
    option = f"--state-dir {state_dir}" if state_dir else f"the demo's state dir {target} (give another with --state-dir DIR)"
    try:  # exists() too: on Python 3.11 it raises for all but a missing path (EACCES, a name too long)
        if target.exists() and not target.is_dir():
            raise UsageError(f"{option}: not a directory (the demo keeps its sessions database in it)")
        make_private_dir(target)
    except OSError as exc:
        raise UsageError(f"{option}: cannot make it: {exc.strerror or exc}") from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: not writable by this user (the demo keeps its sessions database in it)")


def _default_devices(auto: bool) -> tuple[str, str]:
    """The microphone and speaker: the machine's, else the bundled recording (played once by the
    scripted run, which presses at once; looped for a person, who may press a minute later: played
    once from the start, it had ended by then and the conversation heard nothing) and no speaker."""
    recording = f"{'file' if auto else 'loop'}:{DEMO_RECORDING}"
    try:
        from edge_agent.audio.devicelist import list_devices

        devices = list_devices()
    except Exception:  # no PyAudio or no ALSA at all: fall back to files
        return recording, "null"
    has_in = any(d["inputs"] > 0 and d["name"] != "null" for d in devices)
    has_out = any(d["outputs"] > 0 and d["name"] != "null" for d in devices)
    # the scripted run plays the recording: nobody is there to speak into a microphone
    return ("default" if has_in and not auto else recording), ("default" if has_out else "null")


def command_name() -> str:
    """How the user can run edge-agent again: `edge-agent` when that is what is on the PATH,
    else the path they used (`.venv/bin/edge-agent` after script/demo)."""
    argv0 = sys.argv[0]
    if Path(argv0).name != "edge-agent":
        return f"{_path_for_humans(sys.executable)} -m edge_agent"
    on_path = shutil.which("edge-agent")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "edge-agent"
    return _path_for_humans(argv0)


def _path_for_humans(path: str) -> str:
    rel = os.path.relpath(path)
    return shlex.quote(os.path.abspath(path) if rel.startswith("..") else rel)


@dataclass(frozen=True)
class SimRecord:
    session_id: str
    continued_from: str | None
    earlier_turns: int


async def until(pred: Callable[[], bool], timeout_s: float) -> bool:
    """Waits for `pred` to hold, polling the kiosk's own state; False after `timeout_s`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() >= end:
            return False
        await asyncio.sleep(0.05)
    return True


class Story:
    """The scripted demo: presses, and checks each step against the kiosk, simulator and store."""

    def __init__(self, kiosk: Kiosk, sim_thread: SimulatorThread, store: SessionStore, input_spec: str) -> None:
        self.kiosk, self.sim_thread, self.store, self.input_spec = kiosk, sim_thread, store, input_spec
        self.conv = kiosk.conversation

    async def sim_newest(self) -> SimRecord | None:
        """The newest session the simulator answered, read on the simulator's own thread."""
        sim = self.sim_thread.sim

        async def newest() -> SimRecord | None:
            s = sim.sessions[-1] if sim.sessions else None
            return SimRecord(s.session_id, s.continued_from, s.earlier_turns) if s else None

        result: SimRecord | None = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(newest(), self.sim_thread.loop))
        return result

    async def run(self) -> None:
        if not await until(self.kiosk.ready.is_set, READY_S):
            raise DemoFailed(f"the kiosk did not get ready in {READY_S:.0f} s: the audio input {self.input_spec} did not open (see the error above); try --input file:PATH.wav")
        fresh = bool(self.store.recent(1))
        first = await self.conversation(1, None, long_press=fresh)
        await self.conversation(2, first, long_press=False)

    async def conversation(self, n: int, continues: str | None, long_press: bool) -> str:
        kind = "long press: start fresh, the store holds earlier sessions" if long_press else ("start" if n == 1 else "continue the last session")
        print(f"\n--- demo: press #{n} ({kind}) ---", flush=True)
        replies = self.kiosk.counters["replies"]
        self.kiosk.dispatch(c.Press(long=long_press))
        if not await until(lambda: self.conv.state in (c.LISTENING, c.SPEAKING), START_S):
            raise DemoFailed(f"conversation {n} did not start within {START_S:.0f} s (state {self.conv.state}; see the log above)")
        session_id = self.conv.session_id
        sim = await self.sim_newest()
        if sim is None or sim.session_id != session_id:
            raise DemoFailed(f"conversation {n}: the simulator has no record of session {session_id}")
        if sim.continued_from != continues:
            want = "a new session" if continues is None else f"continuing {continues}"
            raise DemoFailed(f"conversation {n} should be {want}, but the simulator got session_continuation = {sim.continued_from}")
        if continues is None:
            self.check(f"conversation {n} is a new session {_short(session_id)} (the simulator got no session_continuation)")
        else:
            self.check(f"conversation {n} continues conversation 1: the simulator got session_continuation = {_short(continues)} and knew its {sim.earlier_turns} earlier turn(s)")
        replied = await until(lambda: (self.kiosk.counters["replies"] > replies and self.conv.state == c.LISTENING) or self.conv.state not in LIVE, REPLY_S)
        if self.kiosk.counters["replies"] == replies:
            why = f"the conversation ended by itself (state {self.conv.state})" if replied else f"no reply within {REPLY_S:.0f} s"
            raise DemoFailed(f"conversation {n}: the agent never answered, {why}: did it hear speech from {self.input_spec}? try --input file:{DEMO_RECORDING}")
        self.check(f"the agent answered ({self.kiosk.counters['replies'] - replies} reply)")
        if self.conv.state in LIVE:  # checked and pressed in one step of the loop: no race with an idle timeout
            print(f"--- demo: press to end conversation #{n} ---", flush=True)
            self.kiosk.dispatch(c.Press())
        else:
            self.check(f"conversation {n} had already ended by itself (state {self.conv.state}); no press needed")
        if not await until(lambda: self.conv.state == c.IDLE, END_S):
            raise DemoFailed(f"conversation {n} did not end within {END_S:.0f} s (state {self.conv.state})")
        stored = self.store.recent(1)
        if not stored or stored[0].id != session_id or stored[0].continued_from != continues or stored[0].ended_at is None:
            raise DemoFailed(f"conversation {n}: the session store does not hold it as expected: {stored[0] if stored else 'empty'}")
        self.check(f"the store holds session {_short(session_id)}, ended ({stored[0].end_reason})" + (f", continuing {_short(continues)}" if continues else ""))
        return session_id

    @staticmethod
    def check(text: str) -> None:
        print(f"    ok: {text}", flush=True)


def _short(session_id: str) -> str:
    return f"{session_id[:4]}…{session_id[-4:]}" if len(session_id) > 10 else session_id


OPTIONS = {"audio.input": "--input", "audio.output": "--output"}
"""The config keys the demo's options set: a config error on one (an `--output file:` it cannot
write) was `config error: audio.output`, exit 78, about a config the demo's user never wrote."""


def run_demo(auto: bool, state_dir: Path | None, input_spec: str | None, output_spec: str | None) -> int:
    try:
        return _run_demo(auto, state_dir, input_spec, output_spec)
    except ConfigError as exc:  # the demo has no config file: name the option the value came from
        if exc.key not in OPTIONS:
            raise
        problem = exc.problem
        for key, option in OPTIONS.items():
            problem = problem.replace(key, option)
        given = input_spec if exc.key == "audio.input" else output_spec
        raise UsageError(f"{OPTIONS[exc.key]}{f' {given}' if given else ''}: {problem}") from None


def _run_demo(auto: bool, state_dir: Path | None, input_spec: str | None, output_spec: str | None) -> int:
    auto = auto or not sys.stdin.isatty()
    default_in, default_out = _default_devices(auto)
    audio_in = audio_spec(input_spec, True) if input_spec else default_in
    audio_out = audio_spec(output_spec, False) if output_spec else default_out
    store_dir = state_dir or DEMO_STATE_DIR
    store = SessionStore(store_dir)
    if state_dir is None:
        store.forget()  # the demo's own store: each run starts fresh, like its simulator
    sessions_cmd = f"{command_name()} sessions --state-dir {shlex.quote(str(store_dir))}"
    sim_thread = SimulatorThread()
    with sim_thread as sim:
        settings = config.from_dict(
            {
                "device": {"id": "demo-kiosk", "state_dir": str(store_dir)},
                "agent": {"endpoint": sim.url, "agent_id": "demo-agent", "public_key": "demo-public-key", "metadata": {"kiosk": "demo"}},
                "session": {"idle_timeout_s": 20.0},
                "audio": {"input": audio_in, "output": audio_out},
                "button": {"source": "none" if auto else "keyboard"},
                "log": {"transcripts": True},  # the demo shows the conversation
            }
        )
        print(f"edge-agent demo: agent simulator at {sim.url}; input {audio_in}; output {audio_out}; sessions in {store_dir}", flush=True)
        if not auto:
            print("Enter = press (start / end), l + Enter = long press (fresh session), q + Enter = quit", flush=True)
        kiosk = Kiosk(settings, button=NoButton() if auto else KeyboardButton(), store=store)
        failure: list[str] = []
        checked: list[bool] = []  # the story ran to its end: a kiosk stopped before (Ctrl-C) is no success

        async def scripted() -> None:
            try:
                await asyncio.wait_for(Story(kiosk, sim_thread, store, audio_in).run(), STORY_S)
                checked.append(True)
            except DemoFailed as exc:
                failure.append(str(exc))
            except TimeoutError:
                failure.append(f"the demo took longer than {STORY_S:.0f} s")
            kiosk.stop()

        async def watch_ready() -> None:
            if not await until(kiosk.ready.is_set, READY_S):
                failure.append(f"the audio input {audio_in} did not open in {READY_S:.0f} s (see the error above); try --input file:PATH.wav")
                kiosk.stop()

        async def main() -> int:
            helper = asyncio.create_task(scripted() if auto else watch_ready())
            result = await kiosk.run()
            helper.cancel()
            return result

        result = asyncio.run(main())
    if auto and not failure and not checked:  # Ctrl-C mid-story printed "demo done: ... checked" and exited 0
        failure.append("the kiosk stopped (Ctrl-C, a signal or an error above) before the story was checked")
    if failure:
        print(f"\n--- demo FAILED: {failure[0]} ---", file=sys.stderr, flush=True)
        return 1
    if auto:
        print("\n--- demo done: conversation 2 continued conversation 1 (checked in the simulator and the store) ---", flush=True)
    print(f"--- see the stored sessions: {sessions_cmd} ---", flush=True)
    return result
