"""`edge-agent demo`: the whole appliance against the bundled agent simulator, on any machine.

The keyboard is the button (Enter = press, l = long press, q = quit). With no terminal, or with
`--auto`, a script presses for you and shows a conversation being continued: press, talk, end;
press again and the new session continues the first one. The microphone is the default input
when PyAudio finds one, else the bundled recording (LibriVox / CMU Sphinx speech).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from edge_agent.core import config
from edge_agent.core import conversation as c
from edge_agent.devtools.simulator import SimulatorThread
from edge_agent.hardware.button import KeyboardButton, NoButton
from edge_agent.service.daemon import Kiosk

log = logging.getLogger("edge_agent.devtools.demo")

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEMO_RECORDING = DATA_DIR / "demo_speech.wav"


def _default_devices() -> tuple[str, str]:
    try:
        from edge_agent.audio.pyaudio_io import list_devices

        devices = list_devices()
    except Exception:  # no PyAudio or no ALSA at all: fall back to files
        return f"file:{DEMO_RECORDING}", "null"
    has_in = any(d["inputs"] > 0 and d["name"] != "null" for d in devices)
    has_out = any(d["outputs"] > 0 and d["name"] != "null" for d in devices)
    return (("default" if has_in else f"file:{DEMO_RECORDING}"), ("default" if has_out else "null"))


async def _scripted(kiosk: Kiosk) -> None:
    """Two conversations: the second continues the first. Waits on the kiosk's own state."""
    conv = kiosk.conversation

    async def until(pred: object, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not pred() and loop.time() < end:  # type: ignore[operator]
            await asyncio.sleep(0.05)

    await kiosk.ready.wait()
    for turn in (1, 2):
        print(f"\n--- demo: press #{turn} ({'continue the last session' if turn == 2 else 'start'}) ---", flush=True)
        kiosk.dispatch(c.Press())
        await until(lambda: conv.state == c.LISTENING, 10)
        replies = kiosk.counters["replies"]
        await until(lambda r=replies: kiosk.counters["replies"] > r and conv.state == c.LISTENING, 40)
        print(f"--- demo: press to end conversation #{turn} ---", flush=True)
        kiosk.dispatch(c.Press())
        await until(lambda: conv.state == c.IDLE, 5)
    print("\n--- demo done: `edge-agent sessions` shows the stored sessions ---", flush=True)
    kiosk.stop()


def run_demo(auto: bool, state_dir: Path | None, input_spec: str | None, output_spec: str | None) -> int:
    auto = auto or not sys.stdin.isatty()
    default_in, default_out = _default_devices()
    with SimulatorThread() as sim:
        settings = config.from_dict(
            {
                "device": {"id": "demo-kiosk", "state_dir": str(state_dir or Path.home() / ".local/state/edge-agent-demo")},
                "agent": {"endpoint": sim.url, "agent_id": "demo-agent", "public_key": "demo-public-key", "metadata": {"kiosk": "demo"}},
                "session": {"idle_timeout_s": 20.0},
                "audio": {"input": input_spec or default_in, "output": output_spec or default_out},
                "button": {"source": "none" if auto else "keyboard"},
                "log": {"transcripts": True},  # the demo shows the conversation
            }
        )
        print(f"edge-agent demo: agent simulator at {sim.url}; input {settings.audio.input}; output {settings.audio.output}", flush=True)
        if not auto:
            print("Enter = press (start / end), l + Enter = long press (fresh session), q + Enter = quit", flush=True)
        kiosk = Kiosk(settings, button=NoButton() if auto else KeyboardButton())

        async def main() -> int:
            script = asyncio.create_task(_scripted(kiosk)) if auto else None
            result = await kiosk.run()
            if script is not None:
                script.cancel()
            return result

        return asyncio.run(main())
