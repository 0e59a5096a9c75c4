"""Mosquitto: runs a throw-away local broker on a free loopback port (tests, soak, demos).

kill() and start() again on the same port to play a broker crash and recovery.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from edge_agent.errors import EdgeAgentError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    def __init__(self, root: Path, extra: str = "", port: int | None = None) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise EdgeAgentError("mosquitto is not installed (script/bootstrap installs it)")
        self.exe = exe
        self.root = root
        self.port = port or free_port()
        self.conf = root / "mosquitto.conf"
        # as root, mosquitto would drop to its own user, who cannot read our private files
        as_user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{as_user}{extra}\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "mosquitto.log"

    def start(self) -> Mosquitto:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise EdgeAgentError(f"mosquitto did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
