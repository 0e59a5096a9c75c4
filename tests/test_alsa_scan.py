"""PortAudio's ALSA device scan loads every PCM plugin the ALSA configuration defines; the kiosk
keeps none of them it does not play through (audio/alsascan.py), and its devices still work.

In a fresh process each (what a process has loaded is global): the ALSA configuration is a HOME
whose .asoundrc has the tests' `file` devices as `default` and one more PCM whose plugin lives in
a shared library of libasound2-plugins (`upmix`), as Debian's own configuration has `a52`, `jack`...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edge_agent.devtools.pulse import PulseServer

PROBE = r"""
import asyncio, json
import pyaudio
from edge_agent.audio.devicelist import list_devices
from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.pyaudio_io import PyAudioSink

def plugins():
    with open("/proc/self/maps") as maps:
        return sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps if "libasound_module_pcm_" in line})

def probe_code_kb():  # resident kB of libjack's and libdb's code (what PortAudio's JACK probe ran)
    kb, code = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                name = head[-1].rsplit("/", 1)[-1]
                code = head[1].startswith("r-x") and name.startswith(("libjack.so", "libdb-"))
            elif code and line.startswith("Rss:"):
                kb += int(head[1])
    return kb

pa = pyaudio.PyAudio()  # the scan as PortAudio does it, kept as long as PortAudio runs
scanned = plugins()
probe_kb = probe_code_kb()
pa.terminate()
devices = [d["name"] for d in list_devices()]  # `edge-agent devices` (it opens every device)

async def main():
    got = []
    loop = asyncio.get_running_loop()
    source = PyAudioSource("default", 30, max_queued_frames=200_000)
    source.start(loop, lambda frame, at: got.append(frame))
    sink = PyAudioSink("default", 20)
    sink.start(loop, lambda: None)
    sink.buffer.write(bytes(range(1, 256)) * 40)
    while len(got) < 20 or sink.buffer.queued_bytes:
        await asyncio.sleep(0.01)
    loaded = plugins()
    kiosk_probe_kb = probe_code_kb()
    source.stop()
    sink.stop()
    return {"scanned": scanned, "loaded": loaded, "frames": got, "devices": devices, "probe_kb": probe_kb, "kiosk_probe_kb": kiosk_probe_kb}

out = asyncio.run(main())
out["mic"] = b"".join(out.pop("frames")[:20]).hex()
print(json.dumps(out))
"""


def test_the_device_scan_leaves_no_unused_alsa_plugin_loaded(tmp_path: Path) -> None:
    mic = bytes(range(256)) * 250  # 2 s
    (tmp_path / "mic.raw").write_bytes(mic)
    (tmp_path / ".asoundrc").write_text(
        f"""
pcm.!default {{ type asym capture.pcm "fakemic" playback.pcm "fakespk" }}
pcm.fakemic {{ type file slave.pcm "nullsrc" file "/dev/null" infile "{tmp_path / "mic.raw"}" format "raw" }}
pcm.nullsrc {{ type null }}
pcm.fakespk {{ type file slave.pcm "null" file "{tmp_path / "speaker.raw"}" format "raw" }}
pcm.kiosk_upmix {{ type upmix slave.pcm "null" }}
"""
    )
    env = {**os.environ, "HOME": str(tmp_path), "JACK_NO_START_SERVER": "1"}
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert "libasound_module_pcm_upmix.so" in out["scanned"], f"the scan loaded no plugin (is libasound2-plugins installed?): {out['scanned']}"
    assert out["loaded"] == [], "plugins only the scan used are still loaded"
    # the code PortAudio's JACK probe ran (libjack, and the libdb it opens its metadata with) is
    # given back once PortAudio is up (audio/probepages.py)
    assert out["probe_kb"] > 100, f"PortAudio's JACK probe ran no libjack/libdb code here ({out['probe_kb']} kB): is Debian's libportaudio2 (with JACK) installed?"
    assert out["kiosk_probe_kb"] == 0, out
    # the devices work as before: capture bit exact, playback written, the list complete
    assert bytes.fromhex(out["mic"]) == mic[: 20 * 960]
    assert bytes(range(1, 256)) * 40 in (tmp_path / "speaker.raw").read_bytes()
    assert {"default", "fakemic", "fakespk", "kiosk_upmix"} <= set(out["devices"])


HIDE_PROBE = r"""
import json, sys
import pyaudio
from edge_agent.audio import alsascan

alsascan.want_device(sys.argv[1])
hidden = alsascan.hide_from_scan()
pa = pyaudio.PyAudio()
with open("/proc/self/maps") as maps:
    scanned = sorted({line.split()[-1].rsplit("/", 1)[-1] for line in maps if "libasound_module_pcm_" in line})
print(json.dumps({"hidden": hidden, "scanned": scanned}))
"""


JACK_PROBE = PROBE.split("pa = pyaudio.PyAudio()")[0] + r"""
from edge_agent.audio.pyaudio_io import _new_pa

real = pyaudio.PyAudio.get_host_api_info_by_type
def jack_answered(self, kind):  # a JACK server (or PipeWire's) answered PortAudio's probe
    return {"name": "JACK Audio Connection Kit", "type": kind} if kind == pyaudio.paJACK else real(self, kind)

pyaudio.PyAudio.get_host_api_info_by_type = jack_answered
pa = _new_pa(pyaudio, hide=True)
print(json.dumps({"kept_kb": probe_code_kb()}))
pa.terminate()
"""


def test_with_a_jack_server_up_its_code_stays_resident(tmp_path: Path) -> None:
    """PortAudio then keeps a live JACK client whose realtime thread runs libjack every period:
    giving those pages back would make it fault in the middle of the audio graph."""
    env = {**os.environ, "HOME": str(tmp_path), "JACK_NO_START_SERVER": "1"}
    run = subprocess.run([sys.executable, "-c", JACK_PROBE], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1])["kept_kb"] > 100, run.stdout


def test_the_kiosks_scan_never_opens_a52_unless_its_devices_could_be_a52(tmp_path: Path) -> None:
    """Debian's libasound2-plugins defines `a52`: opening it in the scan maps libavcodec, and ~3 MB
    of what that pulls in stays mapped for good. The kiosk's scan leaves it out, unless a
    configured device could be it (an index, or a part of its name); other plugins are scanned
    as before."""
    (tmp_path / ".asoundrc").write_text('pcm.kiosk_upmix { type upmix slave.pcm "null" }\n')
    env = {**os.environ, "HOME": str(tmp_path), "JACK_NO_START_SERVER": "1"}

    def scan(spec: str) -> dict[str, list[str]]:
        run = subprocess.run([sys.executable, "-c", HIDE_PROBE, spec], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
        assert run.returncode == 0, run.stderr[-2000:]
        return dict(json.loads(run.stdout.splitlines()[-1]))

    a52 = "libasound_module_pcm_a52.so"
    for spec in ("default", "pulse", "USB"):
        out = scan(spec)
        assert out["hidden"] == ["a52"] and a52 not in out["scanned"], (spec, out)
        assert "libasound_module_pcm_upmix.so" in out["scanned"], out
    for spec in ("a52", "A5", "2"):
        out = scan(spec)
        assert out["hidden"] == [] and a52 in out["scanned"], (spec, out)


SMAPS = """\
7f0000000000-7f0000002000 r--p 00000000 fe:00 11 /usr/lib/x86_64-linux-gnu/libdb-5.3.so
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000002000-7f0000004000 r-xp 00002000 fe:00 11 /usr/lib/x86_64-linux-gnu/libdb-5.3.so
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000004000-7f0000005000 r--p 00004000 fe:00 11 /usr/lib/x86_64-linux-gnu/libdb-5.3.so
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
7f0000005000-7f0000006000 rw-p 00005000 fe:00 11 /usr/lib/x86_64-linux-gnu/libdb-5.3.so
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000006000-7f0000008000 r-xp 00002000 fe:00 12 /usr/lib/x86_64-linux-gnu/libjack.so.0.1.0
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
7f0000008000-7f000000a000 r-xp 00002000 fe:00 13 /usr/lib/x86_64-linux-gnu/libdbus-1.so.3
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
7f000000a000-7f000000c000 r-xp 00000000 00:00 0
Rss:                   8 kB
Anonymous:             8 kB
Swap:                  0 kB
"""


def test_only_probe_library_pages_still_equal_to_their_file_are_given_back() -> None:
    """madvise(MADV_DONTNEED) would throw away a private page's contents (a library's relocated
    data): only mappings of libjack and libdb that are not writable and hold no anonymous page
    qualify, and only where something is resident; other libraries (libdbus) never."""
    from edge_agent.audio.probepages import releasable

    assert releasable(SMAPS.splitlines(keepends=True)) == [(0x7F0000000000, 0x2000), (0x7F0000002000, 0x2000)]


def test_a_mapping_with_a_swapped_out_private_page_is_never_given_back() -> None:
    """A relocated page of libdb's read-only-after-relocation data (RELRO) that went to swap is
    counted under Swap, not Anonymous; madvise(MADV_DONTNEED) would drop it and the next access
    would read the unrelocated file page instead (the next PortAudio start runs the JACK probe,
    and libdb with it, again)."""
    from edge_agent.audio.probepages import releasable

    relro = """\
7f0000004000-7f0000007000 r--p 00004000 fe:00 11 /usr/lib/aarch64-linux-gnu/libdb-5.3.so
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  8 kB
7f0000007000-7f0000008000 r--p 00007000 fe:00 11 /usr/lib/aarch64-linux-gnu/libdb-5.3.so
Rss:                   4 kB
Anonymous:             0 kB
"""
    assert releasable(relro.splitlines(keepends=True)) == [], "a private page in swap, or no Swap line to tell"


PULSE_PROBE = r"""
import asyncio, json, socket, time
import pyaudio
from edge_agent.audio.probepages import DEVICE_LOAD_ONLY
from edge_agent.audio.microphone import PyAudioSource
from edge_agent.audio.pyaudio_io import PyAudioSink

def code_kb(prefixes, perms=("r-x",)):  # resident kB of these libraries' code (or other mappings), and whether any is mapped
    kb, mapped, counted = 0, False, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                name = head[-1].rsplit("/", 1)[-1]
                mapped = mapped or name.startswith(prefixes)
                counted = head[1].startswith(perms) and name.startswith(prefixes)
            elif counted and line.startswith("Rss:"):
                kb += int(head[1])
    return kb, mapped

read_only = ("r-x", "r--")
pa = pyaudio.PyAudio()  # the device scan: ALSA's configuration parsed, every PCM opened
asound_scanned_kb = code_kb(("libasound.so",), read_only)[0]
pa.terminate()
loop = asyncio.new_event_loop()
mic, speaker = PyAudioSource("pulse", 30), PyAudioSink("pulse", 60)
mic.start(loop, lambda frame, at: None)
speaker.start(loop, lambda: None)
(loaded_kb, loaded), (pulse_kb, _) = code_kb(DEVICE_LOAD_ONLY), code_kb(("libpulse",))
load_only_started_kb = code_kb(DEVICE_LOAD_ONLY, read_only)[0]
socket.getaddrinfo("localhost", 1883)  # what connecting to the agent and the broker does
load_only_connected_kb = code_kb(DEVICE_LOAD_ONLY, read_only)[0]
time.sleep(0.5)  # what the streams run of libasound comes back meanwhile
asound_streaming_kb = code_kb(("libasound.so",), read_only)[0]
speaker.stop()
mic.stop()
out = {"load_only_kb": loaded_kb, "load_only_mapped": loaded, "libpulse_kb": pulse_kb, "asound_scanned_kb": asound_scanned_kb}
out.update(asound_streaming_kb=asound_streaming_kb, load_only_started_kb=load_only_started_kb, load_only_connected_kb=load_only_connected_kb)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_code_only_loading_the_pulse_device_ran_is_given_back(tmp_path: Path) -> None:
    """The `pulse` plugin pulls in libsndfile and its codecs, X11, libsystemd, D-Bus... through
    libpulsecommon; what loading them touched (~2 MB) stays resident though a stream never runs
    it. Once its streams are open the kiosk gives it back, and what of libasound only the scan and
    the set-up ran; libpulse, which runs every period, keeps its pages. Connecting somewhere
    afterwards does not make them resident again."""
    pulse = PulseServer(tmp_path / "pulse").start()
    try:
        env = {**os.environ, **pulse.env, "JACK_NO_START_SERVER": "1"}
        run = subprocess.run([sys.executable, "-c", PULSE_PROBE], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    finally:
        pulse.kill()
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["load_only_mapped"] and out["libpulse_kb"] > 0, out
    assert out["load_only_kb"] == 0, out
    assert out["asound_streaming_kb"] < out["asound_scanned_kb"], out
    # the first host name looked up does not bring them back (the idna codec is loaded before)
    assert out["load_only_connected_kb"] <= out["load_only_started_kb"], out
