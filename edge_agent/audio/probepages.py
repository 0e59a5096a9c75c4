"""Gives back the memory of libraries only PortAudio's start-up probe ran.

`Pa_Initialize` (every `pyaudio.PyAudio()`) initialises each host API it was built with; Debian's
PortAudio tries JACK by opening a JACK client, and JACK's client library first opens its metadata
database with Berkeley DB (libdb). With no JACK server the probe fails and neither library runs
again, but the ~1.3 MB of their code the probe executed stays resident in the process (file
pages: RSS counts them). The kiosk never plays through JACK, so once PortAudio is up it tells
the kernel it no longer needs those pages (`madvise(MADV_DONTNEED)`). That is safe only for
pages still identical to the file: they drop out of the process's page tables, stay in the page
cache, and should the code run again (a JACK server after all) it faults back in from there. So
only mappings that are not writable and hold no private (copied-on-write) page, resident or in
swap, are given back: a library's relocated data is never touched.

The same holds for what opening the `pulse` device loads (`DEVICE_LOAD_ONLY`): the ALSA plugin
links libpulse, whose common library links libsndfile (and through it FLAC, Vorbis, Opus, MP3
codecs), X11 and xcb, libsystemd (and libgcrypt, lz4, zstd), D-Bus and libasyncns. Loading them
touched ~2 MB of their code (relocations, symbol look-ups, constructors) that a client playing
and recording a stream does not run again; once the stream is open the kiosk gives those pages
back the same way. Whatever of it does run later faults back in from the page cache. So does
libasound's (`SET_UP_MOSTLY`): the device scan and ALSA's configuration parser ran about half of
what is resident of it, once; what a stream runs every period comes back in its first periods.
And so does the code the rest of the kiosk's start-up ran more of than a conversation runs
(`START_UP_MOSTLY`: SQLite, numpy's core).
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Iterable

log = logging.getLogger(__name__)

PROBE_ONLY = ("libjack.so", "libdb-")
"""Libraries (file-name prefixes) whose code only PortAudio's JACK probe runs in the kiosk."""

DEVICE_LOAD_ONLY = (
    "libsndfile.so",
    "libFLAC.so",
    "libvorbis",
    "libogg.so",
    "libopus.so",
    "libmp3lame.so",
    "libmpg123.so",
    "libX11",
    "libxcb.so",
    "libXau.so",
    "libXdmcp.so",
    "libsystemd.so",
    "libgcrypt.so",
    "libgpg-error.so",
    "liblz4.so",
    "libzstd.so",
    "libbsd.so",
    "libmd.so",
    "libcap.so",
    "libdbus-1.so",
    "libasyncns.so",
)
"""Libraries (file-name prefixes) the `pulse` device's plugin pulls in through libpulsecommon whose
code a stream does not run (not libpulse or libpulsecommon themselves: given back, they came back
whole within seconds). Prefixes of libraries a device does not load match nothing."""

SET_UP_MOSTLY = ("libasound.so",)
"""Libraries a stream runs, but less of than setting it up did: with the `pulse` device, libasound
went from ~750 kB resident after the scan and the opens to ~350 kB given back and faulted back in
by the streams (loading it alone makes ~280 kB resident, as in the benchmark's imports floor)."""

START_UP_MOSTLY = ("libsqlite3.so", "_multiarray_umath.", "_umath_linalg.", "libquadmath", "unicodedata.")
"""Libraries the kiosk's start-up ran much more of than a conversation does, given back with the
device's: SQLite (opening the session store: its schema, checks and clean-up; ~1.2 MB resident
against ~0.7 MB for loading it, ~0.1 MB once a conversation has run it back in), numpy's core
(what building the gate's, the earcons' and the echo path's tables ran: ~0.7 MB of its ~3.4 MB
does not come back), its linear algebra and quad-precision libraries, and unicodedata (loaded for
the idna codec, run only for a host name that is not ASCII). Measured with the `pulse` device in
`bench/run.py --only memory`: the daemon's peak RSS 1.7-1.9 MB lower."""

MADV_DONTNEED = 4
"""Linux's value on every architecture the kiosk runs on (asm-generic/mman-common.h)."""

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def releasable(smaps: Iterable[str], prefixes: tuple[str, ...] = PROBE_ONLY) -> list[tuple[int, int]]:
    """(start address, length in bytes) of each mapping in `smaps` (the lines of /proc/PID/smaps)
    of a file whose name starts with one of `prefixes`, that is not writable, has resident pages
    and not one private (copied-on-write) page, resident (`Anonymous`) or swapped out (`Swap`):
    what `release_probe_pages` gives back. A swapped-out private page is not counted in
    `Anonymous`, and MADV_DONTNEED would discard it and fault the file's page back in its place
    (a library's relocations undone)."""
    out: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    fields: dict[str, int] = {}

    def close() -> None:
        if current is not None and fields.get("Rss", 0) > 0 and fields.get("Anonymous") == 0 and fields.get("Swap") == 0:
            out.append(current)

    for line in smaps:
        head = _HEADER.match(line)
        if head is not None:
            close()
            start, end, perms, path = head.groups()
            name = path.rsplit("/", 1)[-1]
            wanted = path.startswith("/") and "w" not in perms and name.startswith(prefixes)
            current = (int(start, 16), int(end, 16) - int(start, 16)) if wanted else None
            fields = {}
        elif current is not None and line.startswith(("Rss:", "Anonymous:", "Swap:")):
            key, value = line.split()[:2]
            fields[key[:-1]] = int(value)
    close()
    return out


def release_probe_pages(prefixes: tuple[str, ...] = PROBE_ONLY) -> int:
    """Gives back the resident pages of `prefixes`' libraries that are still the file's own
    (see `releasable`); returns the bytes of mappings advised. Harmless to call again, and where
    there is no /proc or no such library (then 0). Call it after `pyaudio.PyAudio()`."""
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            ranges = releasable(f, prefixes)  # line by line: the whole text is ~1 MB
    except OSError:
        return 0
    if not ranges:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    given = 0
    for start, length in ranges:
        if libc.madvise(start, length, MADV_DONTNEED) == 0:
            given += length
        else:
            log.debug("madvise(%#x, %d): errno %d", start, length, ctypes.get_errno())
    return given
