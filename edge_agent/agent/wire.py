"""The agent link's socket: reads in small pieces, writes in batches.

`read_in_small_chunks` caps what asyncio reads (and allocates) at once. `BatchingConnection` is
the link's WebSocket connection: websockets hands each outgoing frame to the transport on its
own, and asyncio's socket transport writes each at once, one `send` syscall with the kernel's
whole TCP path (on loopback the receiver's too) per WebSocket frame. The microphone delivers a
capture period (two 30 ms frames) at a time and each frame is its own binary message, so the
uplink paid two syscalls per wake-up: py-spy put a fifth of the daemon's CPU in a conversation
on those writes. Here whatever frames are ready go out in one write: the same messages, the same
bytes in the same order on the stream (with TLS, fewer records around them), half the syscalls;
`send_binaries_now` does it without a task when nothing has to be waited for. `QuietBatch`
says when the gate's long silence may wait to go up a batch at a time.

Incoming, websockets queues each message for a task waiting in `recv`: per message a future, a
task step and one more turn of the loop (an extra `epoll_wait`), ~50 times a second while the
agent talks. A binary message that arrives whole, with nothing queued before it and the reader
waiting, goes to `on_binary` straight from the read instead (`BatchingConnection.process_event`):
the same messages, in the same order, handled sooner; the rest still goes through `recv`.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from websockets.asyncio.client import ClientConnection
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Event, State

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 16 * 1024
"""Most asyncio reads from a socket at once (one TLS record). Its default, 256 KiB, is allocated
for every read and then shrunk to what arrived: glibc maps and unmaps that block each time (three
syscalls and fresh pages per 1 KiB message of agent audio); py-spy put a fifth of the kiosk's
busy time in a conversation on that one read."""


def read_in_small_chunks(transport: asyncio.BaseTransport) -> bool:
    """Caps each read of `transport` (plain or TLS) at READ_CHUNK_BYTES; a larger burst just takes
    another read. False, and nothing changed, where the loop's transports have no such knob."""
    target: object = getattr(transport, "_ssl_protocol", transport)  # TLS: the layer reading records
    if not isinstance(getattr(target, "max_size", None), int):
        return False
    setattr(target, "max_size", READ_CHUNK_BYTES)  # noqa: B010 - an attribute typeshed does not know
    return True


MAX_UNSENT_BYTES = 256 * 1024
"""Most bytes the connection may leave unsent in user space. The link's own writes wait for the
socket past websockets' `write_limit` (4 KiB), so beyond a batch this can only be what websockets
writes by itself without waiting: a pong for every ping, read by the server or not. A server
that stops reading and sends pings would grow it without bound; past this the connection is
aborted (the link ends and is reconnected like a dead one)."""


TEXT_FRAGMENTS_MAX = 4096
"""Most frames of one text message held (websockets' own assembler's limit, MAX_FRAGMENTS): a
server sending "{" and then empty fragments without end (2 bytes each on the wire, nothing
against `max_size`) grew the kiosk by a held frame each, ~94 MB for 0.9 MB sent; past this
the link fails as websockets' does (1009, too many fragments) and is reconnected."""


def _is_utf8(data: bytes | bytearray | memoryview) -> bool:
    try:
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


class BatchingConnection(ClientConnection):
    """A `ClientConnection` (pass it to `connect` as `create_connection`) that writes everything
    the protocol has ready in one go, and can send several binary messages at once; a reader
    that sets `on_binary` gets binary messages straight from the socket's reads."""

    on_binary: Callable[[bytes], None] | None = None
    """Called on the loop, from the socket's read, with each binary message that arrives whole
    (one frame) while nothing is queued for `recv` and a `recv` is waiting: it can go neither
    before nor after anything else. None: every message goes through `recv`."""

    on_bad_text: Callable[[int], None] | None = None
    """Called on the loop with the size of each text message that arrives whole (one frame) and
    is not UTF-8; the message is dropped. None: websockets fails the connection (1007) when `recv`
    decodes it, and one garbled frame costs the conversation a reconnect. A text message in
    several frames is held until its last frame and checked whole (websockets' `max_size`
    bounds its bytes, TEXT_FRAGMENTS_MAX its frames): dropped the same way, or handed on frame by
    frame as it came."""

    _text_fragments: list[Frame] | None = None
    _text_failed = False  # the held message passed TEXT_FRAGMENTS_MAX: its other fragments are dropped
    """The frames so far of a text message in fragments, while `on_bad_text` is set."""

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and (self.on_bad_text is not None or self._text_fragments is not None) and self._held_as_text(event):
            return
        if isinstance(event, Frame) and event.fin:
            handler = self.on_binary
            if handler is not None and event.opcode is Opcode.BINARY and self._reader_waits():
                data = event.data
                handler(data if type(data) is bytes else bytes(data))
                return
            bad_text = self.on_bad_text
            if bad_text is not None and event.opcode is Opcode.TEXT and not _is_utf8(event.data):
                bad_text(len(event.data))
                return
        super().process_event(event)

    def _held_as_text(self, frame: Frame) -> bool:
        """Holds the fragments of a text message; at its last one, checks the whole and drops it
        (`on_bad_text`) or hands every fragment on. True: the frame was taken here."""
        held = self._text_fragments
        if held is None:
            if frame.opcode is not Opcode.TEXT or frame.fin:
                return False
            self._text_fragments = [frame]
            return True
        if frame.opcode is not Opcode.CONT:  # a control frame between fragments goes its own way
            return False
        if self._text_failed:  # the rest of a message the link failed on: dropped to its end
            if frame.fin:
                self._text_fragments, self._text_failed = None, False
            return True
        held.append(frame)
        if not frame.fin:
            if len(held) > TEXT_FRAGMENTS_MAX:  # empty fragments weigh nothing against max_size
                held.clear()
                self._text_failed = True
                self.protocol.fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
                self.send_data()
            return True
        self._text_fragments = None
        whole = b"".join(f.data for f in held)
        bad_text = self.on_bad_text
        if bad_text is not None and not _is_utf8(whole):
            bad_text(len(whole))
            return True
        for fragment in held:
            super().process_event(fragment)
        return True

    def _reader_waits(self) -> bool:
        """A `recv` waits and nothing is queued for it (False where websockets keeps its queue
        otherwise than 17.x does: every message then goes through `recv`)."""
        messages = self.recv_messages
        queue = getattr(getattr(messages, "frames", None), "queue", None)
        return isinstance(queue, collections.deque) and not queue and getattr(messages, "get_in_progress", False) is True and getattr(messages, "closed", True) is False

    def send_data(self) -> None:
        pending: list[bytes] = []
        for data in self.protocol.data_to_send():
            if data:
                pending.append(data)
                continue
            # an empty chunk asks for a half-close after what came before it (as websockets does)
            self._write(pending)
            pending = []
            if self.transport.can_write_eof():
                with contextlib.suppress(Exception):  # write_eof documents no exceptions
                    self.transport.write_eof()
            else:
                self.transport.close()
        self._write(pending)
        if self.paused and self.transport.get_write_buffer_size() > MAX_UNSENT_BYTES and not self.transport.is_closing():
            log.warning("agent server stopped reading: %d KiB of the kiosk's answers unsent, connection aborted", self.transport.get_write_buffer_size() // 1024)
            self.transport.abort()

    def _write(self, chunks: list[bytes]) -> None:
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        elif chunks:
            self.transport.write(b"".join(chunks))

    async def send_binaries(self, messages: Sequence[bytes]) -> None:
        """Each of `messages` as its own binary message, exactly as `send` would send them one
        by one, in one socket write; raises ConnectionClosed like `send`."""
        async with self.send_context():
            for message in messages:
                self.protocol.send_binary(message)

    @property
    def takes_now(self) -> bool:
        """`send_binaries_now` would send: the connection is open and flow control is not
        holding the socket back (`send_binaries` would not wait)."""
        return self.protocol.state is State.OPEN and not self.paused

    def send_binaries_now(self, messages: Sequence[bytes]) -> None:
        """`send_binaries` without waiting, for the caller that checked `takes_now`."""
        for message in messages:
            self.protocol.send_binary(message)
        self.send_data()


QUIET_SETTLE_S = 1.0
"""After the last frame with sound in it, silence still goes out as it is captured, so the
agent's end-of-speech detection hears the pause live."""
QUIET_BATCH_FRAMES = 8
"""Frames of long silence written together: 240 ms in one socket write instead of four."""


class QuietBatch:
    """When the uplink's silence may wait. Once the gate has sent only silence (all-zero frames)
    for `settle_s` (the visitor silent, or the agent talking over a closed microphone: most of a
    conversation), silence goes up QUIET_BATCH_FRAMES at a time: fewer syscalls, socket wake-ups
    and TCP segments (air time on a kiosk's Wi-Fi). A frame with sound in it never waits, and
    takes the silence queued before it along, in order."""

    def __init__(self, settle_s: float = QUIET_SETTLE_S) -> None:
        self.settle_s = settle_s
        self._sound_at = time.monotonic()

    def restart(self) -> None:
        """Silence from now on goes out live for `settle_s` (a stream starting, audio held
        since the press handed over: it may end in speech)."""
        self._sound_at = time.monotonic()

    def live(self, frame: bytes) -> bool:
        """Whether `frame`, about to be queued, goes out as it is captured (sound, or silence
        within `settle_s` of sound); False: it is long silence and may wait for a batch."""
        if frame.count(0) != len(frame):
            self.restart()
            return True
        return time.monotonic() - self._sound_at < self.settle_s
