"""Keeps the sound libraries' chatter out of the user's way (and the journal) unless debug logging.

On a machine without a sound card PortAudio's start-up makes ALSA print 60-130 `ALSA lib ...`
lines and JACK's client library a few `Cannot connect to server ...` lines, straight to file
descriptor 2, before edge-agent has said a word. None of it is an error of ours: PortAudio probes
every backend and device it knows. So, unless `edge_agent` logs at debug level:

- ALSA gets a do-nothing error handler (`snd_lib_error_set_handler`, via ctypes), once;
- JACK is told not to start a server (`JACK_NO_START_SERVER`), and fd 2 points at /dev/null
  for the moment PortAudio initialises or terminates (`quiet_native_stderr`). Python's logging
  keeps working meanwhile: the CLI's log handler writes to its own duplicate of fd 2
  (core/logs.py), which this does not touch.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("edge_agent")

_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
_alsa_state: dict[str, Any] = {}
_fd_lock = threading.Lock()


def chatter_wanted() -> bool:
    """Debug logging shows everything the libraries say."""
    return log.isEnabledFor(logging.DEBUG)


def silence_alsa() -> None:
    """Installs a no-op ALSA error handler (once per process); harmless where ALSA is absent."""
    if "handler" in _alsa_state or chatter_wanted():
        return
    name = ctypes.util.find_library("asound")
    try:
        lib = ctypes.CDLL(name or "libasound.so.2")
    except OSError:
        _alsa_state["handler"] = None
        return
    handler = _ALSA_HANDLER(lambda *_args: None)
    lib.snd_lib_error_set_handler(handler)
    _alsa_state["handler"] = handler  # keep the C callback alive as long as the process


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """fd 2 -> /dev/null around a native call that prints (PortAudio's init and terminate)."""
    if chatter_wanted():
        yield
        return
    silence_alsa()
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    with _fd_lock:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:  # no fd 2 at all: nothing to hide
            yield
            return
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
