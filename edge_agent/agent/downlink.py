"""Downlink: what the agent says on one link, on its way to the conversation, in the order sent.

Part of `AgentLink` (agent/link.py). Agent audio is raw PCM "of any chunk size"
(docs/millis-protocol.md), so it is handed on in whole samples: an odd message's last byte waits
for the next message of the link. `clear` drops every queued agent sample at once, that byte too:
kept, it began the next reply and shifted all of its samples by a byte (noise).

Audio may come before `onready`, and so may the agent's other messages (a greeting's
`start_answering`, `pause`, `clear`, texts). The conversation only listens from `onready` on, so
they are held here and handed on right after it, in the order they came: a `clear` before
`onready` drops the audio held before it (it played at `onready` all the same), and the
`pause`/`unpause`/`start_answering` it ends (a held pause whose clear was dropped left the speaker
paused after `onready`: the reply never played), and goes no further (handed on after
`onready`, it cleared the ready earcon the kiosk had just queued), a `pause` holds the greeting
that follows it (it played on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_agent import BYTES_PER_S
from edge_agent.core import protocol as p

EARLY_AUDIO_BYTES = 10 * BYTES_PER_S
"""Agent audio kept from before `onready` (10 s at 16 kHz) and played after it: the protocol lets
it come first (a greeting), and the vendor's client plays it; beyond this it is dropped, logged."""
EARLY_MESSAGES = 64
"""The agent's other messages kept from before `onready`; beyond this they are dropped, logged
(a server that floods texts before it is ready parks no more than this)."""


_ENDED_BY_CLEAR = (p.Pause, p.Unpause, p.StartAnswering)
"""What a `clear` before `onready` drops from what is held: it ends a pause and a reply's start
(core/turns.py), and is not handed on itself."""


class Downlink:
    """One link's agent audio and messages: `audio` and `message` as they arrive, `ready` at the
    first `onready`. `play` gets audio in whole samples, `hand_on` a held message."""

    def __init__(self, play: Callable[[bytes], None], hand_on: Callable[[p.ServerMessage], None], skipped: Callable[[str, int], None]) -> None:
        self._play, self._hand_on, self._skipped = play, hand_on, skipped
        self.ready = False
        self._held: list[bytearray | p.ServerMessage] = []
        """Before `onready`: audio (adjacent messages as one chunk) and messages, in order."""
        self._held_bytes = 0
        self._held_messages = 0
        self._half_sample = b""
        """The last byte of an odd-length audio message, the first of the next one's samples."""
        self._early_full = False
        """Early audio went over EARLY_AUDIO_BYTES: the rest before `onready` is dropped too (a
        smaller message after the one dropped was kept, and played spliced on to what came before
        it: a jump, and noise to the end when the dropped message had an odd length)."""
        self._early_odd = False
        """The early audio dropped adds up to an odd number of bytes: the agent's audio after it
        does not begin where a sample of what was held would go on (see `ready_now`)."""
        self._skip_byte = False
        """The next audio's first byte is the second half of a sample whose first was dropped."""

    def audio(self, pcm: bytes) -> None:
        """A binary message from the agent: played (in whole samples), or held before `onready`."""
        if self.ready:
            self._whole(pcm)
        elif self._early_full or self._held_bytes + len(pcm) > EARLY_AUDIO_BYTES:
            self._early_full = True
            self._early_odd ^= len(pcm) % 2 == 1
            self._skipped(f"audio before onready beyond {EARLY_AUDIO_BYTES} bytes ({len(pcm)} bytes), not played", logging.INFO)
        else:
            self._held_bytes += len(pcm)
            last = self._held[-1] if self._held else None
            if isinstance(last, bytearray):
                last += pcm  # played at onready as one chunk: one event per message stalled the loop
            else:
                self._held.append(bytearray(pcm))

    def message(self, msg: p.ServerMessage) -> bool:
        """A message of the agent's other than `onready`, `onsessionended` and `pong`. True: hand
        it on now; False: held until `onready` (or, over EARLY_MESSAGES, dropped)."""
        if isinstance(msg, p.Clear):
            self.clear()
            return self.ready  # before `onready` it is done here: handed on after it, it cleared the ready earcon
        if self.ready:
            return True
        if self._held_messages >= EARLY_MESSAGES:
            self._skipped(f"a message before onready beyond {EARLY_MESSAGES} ({type(msg).__name__}), dropped", logging.INFO)
        else:
            self._held_messages += 1
            # nothing reads a function call's params (it counts as activity): kept, 64 of them
            # within the size limit parked ~400 MB of parsed JSON until the link ended
            self._held.append(p.FunctionCall(msg.name, None) if isinstance(msg, p.FunctionCall) else msg)
        return False

    def clear(self) -> None:
        """The agent's `clear`: every sample of it not yet handed on is dropped."""
        self._half_sample, self._skip_byte = b"", False
        if not self.ready:  # and what it ends: a pause (a clear unpauses the speaker) and the
            # reply's start; not handed on itself, a pause held before it left the speaker paused
            self._held = [item for item in self._held if not isinstance(item, (bytearray, *_ENDED_BY_CLEAR))]
            self._held_bytes, self._early_full, self._early_odd = 0, False, False  # what follows a clear is a new reply
            self._held_messages = sum(1 for item in self._held if not isinstance(item, bytearray))

    def ready_now(self) -> None:
        """The first `onready` was handed on: what came before it follows, in order."""
        if self.ready:
            return
        self.ready = True
        held, self._held = self._held, []
        self._held_bytes = self._held_messages = 0
        for item in held:
            if isinstance(item, bytearray):
                self._whole(bytes(item))
            else:
                self._hand_on(item)
        if self._early_odd:  # what was dropped ended half-way into a sample: the audio after it,
            # taken as whole samples from there, was two neighbours' bytes each (noise to the end)
            self._early_odd = False
            if self._half_sample:
                self._half_sample = b""  # its other byte was dropped: the next audio begins on a sample
            else:
                self._skip_byte = True  # the next audio begins with the second byte of a dropped sample

    def _whole(self, pcm: bytes) -> None:
        """Hands agent audio on in whole samples: an odd message's last byte waits for the next
        message of this link. Dropped at the speaker, it made the next message (starting with that
        sample's other byte) play byte-swapped: noise."""
        if self._skip_byte and pcm:
            pcm, self._skip_byte = pcm[1:], False
        if self._half_sample:
            pcm, self._half_sample = self._half_sample + pcm, b""
        if len(pcm) % 2:
            pcm, self._half_sample = pcm[:-1], pcm[-1:]
        if pcm:
            self._play(pcm)
