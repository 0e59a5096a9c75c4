"""BatchingConnection: the agent socket's WebSocket connection, one socket write per batch of frames.

websockets hands each outgoing frame to the transport on its own, and asyncio's socket transport
writes each at once: one `send` syscall, with the kernel's whole TCP path (on loopback the
receiver's too), per WebSocket frame. The microphone delivers a capture period (two 30 ms frames)
at a time and each frame is its own binary message, so the uplink paid two syscalls per wake-up:
py-spy put a fifth of the daemon's CPU in a conversation on those writes. Here whatever frames
are ready go out in one write: the same messages, the same bytes in the same order on the stream
(with TLS, fewer records around them), half the syscalls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection


class BatchingConnection(ClientConnection):
    """A `ClientConnection` (pass it to `connect` as `create_connection`) that writes everything
    the protocol has ready in one go, and can send several binary messages at once."""

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
