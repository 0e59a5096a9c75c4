"""Gives back what PortAudio's ALSA device scan loaded but the kiosk does not use.

`Pa_Initialize` (every `pyaudio.PyAudio()`) opens every PCM the ALSA configuration defines to
list it, and opening one loads its plugin: with Debian's libasound2-plugins that is the `a52`
encoder (libavcodec and ~95 media libraries), `lavrate`, `jack`, `pulse`, `speex`, `upmix`...
alsa-lib keeps each plugin it loaded in a cache (`snd_dlobj_cache`) for as long as its global
configuration lives, so every library the scan touched stays mapped: ~20 MB resident in a
process that then plays through one device. `snd_config_update_free_global()`, the public call
PortAudio itself makes when it terminates, frees that configuration and closes the cached
plugins no open PCM uses. Streams already open keep theirs; a PCM opened later reads the
configuration again and loads only its own plugin. Libraries a plugin pulled in that cannot be
unloaded (marked NODELETE, e.g. GLib) stay mapped, so the kiosk also keeps the scan from opening
`a52` at all (`hide_from_scan`) unless its configured devices could be that one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from edge_agent.audio.probepages import release_probe_pages

log = logging.getLogger(__name__)

SCAN_HIDDEN = ("a52",)
"""PCMs the kiosk's device scan leaves out: opening `a52` (AC-3 encoding for S/PDIF receivers)
loads libavcodec and ~95 media libraries, of which ~3 MB (x265, GLib...) stay mapped for good
even once `release_scan` closes the plugin; a kiosk's microphone and speaker are never that."""

_lib: list[ctypes.CDLL | None] = []


def _asound() -> ctypes.CDLL | None:
    if not _lib:
        try:
            _lib.append(ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2"))
        except OSError:  # no ALSA here (PortAudio then has no ALSA host API either)
            _lib.append(None)
    return _lib[0]


def release_scan(jack_running: bool = False) -> None:
    """Frees ALSA's global configuration and the plugins only the device scan used, and gives
    back the code `Pa_Initialize`'s JACK probe ran (audio/probepages.py) unless it found a JACK
    server (`jack_running`: PortAudio then keeps a live client whose realtime thread runs that
    code every period); harmless to call again, and where ALSA is absent. Call it after
    `pyaudio.PyAudio()`."""
    if not jack_running:
        release_probe_pages()
    lib = _asound()
    if lib is None:
        return
    err = lib.snd_config_update_free_global()
    if err < 0:
        log.debug("snd_config_update_free_global: %d", err)


_wanted: set[str] = set()


def want_device(spec: str) -> None:
    """A device the process will open (PortAudio scans once for all of them): `hide_from_scan`
    keeps every PCM it could name findable."""
    _wanted.add(spec)


def hide_from_scan() -> list[str]:
    """Leaves SCAN_HIDDEN out of the ALSA configuration the next `pyaudio.PyAudio()` scans, unless
    a device passed to `want_device` ("default", an index or a part of a name) could be one of
    them: an index counts every device, and a name matches as `find_device` matches it. Only the
    loaded copy of the configuration changes: `release_scan` frees it, and whatever opens a PCM
    later reads the files again. Returns the names left out (none without ALSA)."""
    lib = _asound()
    specs = tuple(_wanted)
    if lib is None or any(s.isdecimal() for s in specs) or lib.snd_config_update() < 0:
        return []
    top = ctypes.c_void_p.in_dll(lib, "snd_config")
    hidden = []
    for name in SCAN_HIDDEN:
        if any(s.lower() in name for s in specs):
            continue
        node = ctypes.c_void_p()
        if lib.snd_config_search(top, f"pcm.{name}".encode(), ctypes.byref(node)) == 0 and lib.snd_config_delete(node) == 0:
            hidden.append(name)
    return hidden
