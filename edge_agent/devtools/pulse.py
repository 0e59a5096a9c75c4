"""PulseServer: a throw-away PulseAudio daemon giving PortAudio clocked devices without a sound card.

The ALSA `file` and `null` devices are not paced; a PulseAudio null sink runs on a real clock
and has real buffering, so what it measures includes the device buffer a kiosk's speaker has.
Sinks: `kiosk_spk` (the speaker; its monitor hears what was played) and `room` (play a visitor
into it; its monitor is the kiosk's microphone). PortAudio reaches them as the ALSA `pulse`
device (libasound2-plugins) once `env` is in the environment. For the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from edge_agent.errors import EdgeAgentError


class PulseServer:
    def __init__(self, root: Path) -> None:
        exe = shutil.which("pulseaudio")
        if exe is None:
            raise EdgeAgentError("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
        self.exe = exe
        self.root = root
        self.runtime = root / "pulse-runtime"
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.env = {"XDG_RUNTIME_DIR": str(self.runtime), "PULSE_SERVER": f"unix:{self.runtime}/pulse/native", "HOME": str(root)}
        self.pid: int | None = None

    def start(self) -> PulseServer:
        env = {**os.environ, **self.env}
        args = [
            self.exe, "--daemonize=yes", "--exit-idle-time=-1", "-n", "--use-pid-file=yes",
            "--load=module-null-sink sink_name=kiosk_spk",
            "--load=module-null-sink sink_name=room",
            "--load=module-native-protocol-unix",
            "--load=module-always-sink",
        ]  # fmt: skip
        subprocess.run(args, env=env, check=True, capture_output=True, timeout=20)
        pid_file = self.runtime / "pulse" / "pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if pid_file.exists() and self.pactl("info").returncode == 0:
                self.pid = int(pid_file.read_text().split()[0])
                self.pactl("set-default-sink", "kiosk_spk")
                self.pactl("set-default-source", "room.monitor")
                return self
            time.sleep(0.1)
        raise EdgeAgentError("pulseaudio did not start")

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=10)

    def play_loop(self, wav: Path) -> subprocess.Popen[bytes]:
        """Plays `wav` into the `room` sink again and again (the visitor the microphone hears);
        the caller ends it with `.kill()`."""
        script = f'while true; do paplay --device=room "{wav}" || exit 1; done'
        return subprocess.Popen(["bash", "-c", script], env={**os.environ, **self.env}, start_new_session=True)

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, 15)
            except ProcessLookupError:
                pass
            self.pid = None
