"""`edge-agent devices`: every PortAudio device, and which ones the config chooses."""

from __future__ import annotations

import argparse
from typing import Any

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.audio.pyaudio_io import _new_pa, _pyaudio, _terminate, find_device
from edge_agent.errors import AudioError


def list_devices() -> list[dict[str, Any]]:
    """Every device with its channels, default rate and whether it opens 16 kHz mono directly."""
    pyaudio = _pyaudio()
    pa = _new_pa(pyaudio)
    try:
        out = []
        for i in range(pa.get_device_count()):
            info = dict(pa.get_device_info_by_index(i))
            row = {"index": i, "name": info["name"], "inputs": info["maxInputChannels"], "outputs": info["maxOutputChannels"], "rate": int(info["defaultSampleRate"])}
            for kind, key, arg in (("in16k", "maxInputChannels", "input"), ("out16k", "maxOutputChannels", "output")):
                if info[key] > 0:
                    try:
                        row[kind] = bool(pa.is_format_supported(SAMPLE_RATE_HZ, **{f"{arg}_device": i, f"{arg}_channels": 1, f"{arg}_format": pyaudio.paInt16}))
                    except ValueError:
                        row[kind] = False
            out.append(row)
        return out
    finally:
        _terminate(pa)


def cmd_devices(args: argparse.Namespace) -> int:
    from edge_agent.core import config

    settings = config.load_logged(args.config, args.log_level)  # debug shows the backends' own chatter
    pyaudio = _pyaudio()
    pa = _new_pa(pyaudio)
    chosen = {}
    no_device = []
    for spec, want_input in ((settings.audio.input, True), (settings.audio.output, False)):
        if spec.startswith(("file:", "loop:")) or spec == "null":  # said under the table (it said nothing)
            no_device.append(f"audio.{'input' if want_input else 'output'} = {spec!r}: {'a recording' if want_input else 'a file' if spec != 'null' else 'nothing played'}, no device")
            continue
        try:
            chosen[want_input] = find_device(pa, spec, want_input)["index"]
        except AudioError as exc:
            print(f"! {exc}")
    _terminate(pa)
    for line in [*device_table(list_devices(), chosen), *no_device]:
        print(line)
    return 0


NO_DEVICES = (
    "(no audio devices: PortAudio found no sound card. `aplay -l` and `arecord -l` list the cards "
    "the kernel sees; the service's user needs the `audio` group)"
)


def device_table(devices: list[dict[str, Any]], chosen: dict[bool, int]) -> list[str]:
    """The `devices` table: one line per device, marked I/O where the config chose it, and a
    hint in place of an empty table when there is no device at all (a machine without a card)."""
    lines = [f"{'':2}{'idx':>3}  {'in':>2} {'out':>3} {'rate':>6}  16k-in 16k-out  name"]
    yn = {True: "yes", False: "no*", None: "-"}
    for d in devices:
        mark = ("I" if chosen.get(True) == d["index"] else " ") + ("O" if chosen.get(False) == d["index"] else " ")
        lines.append(f"{mark}{d['index']:>3}  {d['inputs']:>2} {d['outputs']:>3} {d['rate']:>6}  {yn[d.get('in16k')]:>6} {yn[d.get('out16k')]:>6}  {d['name']}")
    lines.append(NO_DEVICES if not devices else "I/O = chosen for audio.input/output; no* = opened at the native rate and converted")
    return lines
