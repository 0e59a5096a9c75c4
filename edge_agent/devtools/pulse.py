"""PulseServer: a throw-away PulseAudio daemon giving PortAudio clocked devices without a sound card.

The ALSA `file` and `null` devices are not paced; a PulseAudio null sink runs on a real clock
and has real buffering, so what it measures includes the device buffer a kiosk's speaker has.
Sinks: `kiosk_spk` (the speaker; its monitor hears what was played) and `room` (play a visitor
into it; its monitor is the kiosk's microphone). PortAudio reaches them as the ALSA `pulse`
device (libasound2-plugins) once `env` is in the environment. For the benchmarks and the tests
of what the speaker really played: `MonitorRecording` records a sink's monitor with `parec`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from edge_agent import SAMPLE_RATE_HZ
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

    def record_monitor(self, sink: str = "kiosk_spk", latency_ms: int = 5) -> MonitorRecording:
        """What `sink` plays from now on, as its monitor hears it (see MonitorRecording)."""
        return MonitorRecording(self, sink, latency_ms)

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, 15)
            except ProcessLookupError:
                pass
            self.pid = None


class MonitorRecording:
    """A sink's monitor recorded with `parec` (16 kHz mono), each sample placed on time.monotonic()
    without trusting the player's own bookkeeping.

    The null sink renders on the system clock and its monitor hands each rendered block on at
    once, so sample `i` of the recording was played at `offset + i / 16 kHz`. A chunk reaches
    us no earlier than its last sample was played; the smallest (arrival - sample time of its
    last sample) over all chunks is that offset, off by the quickest delivery (well under a
    millisecond here). A small `latency_ms` keeps chunks short, so that minimum is tight; it also
    asks the sink to render at most that far ahead of its clock (the sink plays into its monitor
    up to a block early: the error of a sample's time, measured at about -3 ms with 5 ms).
    """

    def __init__(self, pulse: PulseServer, sink: str, latency_ms: int) -> None:
        args = ["parec", f"--device={sink}.monitor", f"--latency-msec={latency_ms}", "--raw", "--format=s16le", f"--rate={SAMPLE_RATE_HZ}", "--channels=1"]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, env={**os.environ, **pulse.env})
        self._chunks: list[bytes] = []
        self._samples = 0
        self._offset = float("inf")
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="monitor-recording", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        pending = b""
        while True:
            data = os.read(out.fileno(), 65536)
            now = time.monotonic()
            if not data:
                return
            data, pending = (pending + data), b""
            if len(data) % 2:
                data, pending = data[:-1], data[-1:]
            with self._lock:
                self._chunks.append(data)
                self._samples += len(data) // 2
                self._offset = min(self._offset, now - self._samples / SAMPLE_RATE_HZ)

    def wait_started(self, timeout_s: float = 10.0) -> None:
        """Until the first audio arrived (parec connects in a few ms, sometimes more)."""
        end = time.monotonic() + timeout_s
        while self._samples == 0:
            if time.monotonic() > end or self._proc.poll() is not None:
                raise EdgeAgentError("parec recorded nothing")
            time.sleep(0.01)

    def samples(self) -> tuple[np.ndarray, float]:
        """(everything recorded so far, the time.monotonic() its first sample was played)."""
        with self._lock:
            pcm = np.frombuffer(b"".join(self._chunks), dtype="<i2")
            return pcm, self._offset

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait(5)
        self._reader.join(5)
