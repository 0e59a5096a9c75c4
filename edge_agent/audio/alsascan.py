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
unloaded (marked NODELETE, e.g. GLib) stay mapped: the price of the scan that is left.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_lib: list[ctypes.CDLL | None] = []


def _asound() -> ctypes.CDLL | None:
    if not _lib:
        try:
            _lib.append(ctypes.CDLL(ctypes.util.find_library("asound") or "libasound.so.2"))
        except OSError:  # no ALSA here (PortAudio then has no ALSA host API either)
            _lib.append(None)
    return _lib[0]


def release_scan() -> None:
    """Frees ALSA's global configuration and the plugins only the device scan used; harmless to
    call again, and where ALSA is absent. Call it after `pyaudio.PyAudio()`."""
    lib = _asound()
    if lib is None:
        return
    err = lib.snd_config_update_free_global()
    if err < 0:
        log.debug("snd_config_update_free_global: %d", err)
