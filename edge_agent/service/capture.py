"""CaptureFeed: the microphone's frames on their way to the agent, on the event loop.

Each captured frame goes through `MicPath` (canceller, earcons, gate) and, in a conversation, to
the `Uplink` (the socket, or the audio held until the agent is ready); the gated-out frames go as
silence. Right after a press that opened the gate, the microphone is hurried (`AudioSource.hurry`)
and the start of the frame still being captured goes ahead of it (`lead`), so the visitor's first
syllable does not wait for the end of its frame and capture period; the frame itself then sends
only its rest. Split from the daemon (service/daemon.py), which owns the parts and calls in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge_agent import SAMPLE_RATE_HZ
from edge_agent.agent.uplink import Uplink
from edge_agent.audio.devices import AudioSource
from edge_agent.audio.gate import VadGate
from edge_agent.audio.mic_path import MicPath
from edge_agent.core import conversation as c
from edge_agent.service.ticker import Ticker

HURRY_S = 0.1
"""After a press that opens the gate, the microphone hands over what it has every device block
for this long: long enough for the frame holding the press and the one after it."""


class CaptureFeed:
    """Frames and leads from the microphone to the agent; `counters` are the kiosk's own
    (frames_captured, frames_uplinked are counted here)."""

    def __init__(self, conversation: c.Conversation, mic: MicPath, gate: VadGate, uplink: Uplink, ticker: Ticker, counters: dict[str, int], clock: Callable[[], float]) -> None:
        self.conversation, self.mic, self.gate, self.uplink = conversation, mic, gate, uplink
        self.ticker, self.counters, self.clock = ticker, counters, clock
        self.led_bytes = 0
        """Bytes of the frame being captured that went ahead of it (`lead`)."""
        self._lead_withheld = False  # a part of that frame waited for it: so do the parts after it
        self._held_led = 0  # bytes of the first frame the gate holds back (VadGate.held_frames) that went ahead of it
        self._muted = False  # the conversation's microphone was closed (half duplex, push-to-talk up) since it was last open

    def hurry(self, source: AudioSource) -> None:
        """A new visitor: if the press opened the gate, their first syllable goes as it is captured.
        Their stream is new: it owes no silence for a pre-roll burst that went to another's, or
        nowhere (an opening while idle, on someone talking by the kiosk before the press)."""
        self.gate.debt = 0
        if self.gate.is_open:
            source.hurry(time.monotonic() + HURRY_S, self.lead)

    def held_dropped(self) -> None:
        """The conversation ends and its held audio with it: what of the frame being filled went
        ahead went too, so a next conversation gets that frame whole."""
        self.led_bytes, self._lead_withheld, self._held_led = 0, True, 0

    def _sending(self) -> bool:
        """A conversation takes audio now: holding it for the agent, or streaming on a link."""
        conv = self.conversation
        return conv.holding or (self.uplink.link is not None and conv.streaming)

    def frame(self, frame: bytes, captured_at: float) -> None:
        """A captured frame: gate it and, in a conversation, send it (or silence), or hold it
        while the link is being opened (see core/backlog.py). Of a frame whose start went ahead
        (`lead`), only the rest goes; if the gate holds that frame back (an earcon in it while
        the press alone holds the gate open), only its rest goes when it does."""
        self.counters["frames_captured"] += 1
        self.ticker.frame(captured_at)
        led, self.led_bytes, self._lead_withheld = self.led_bytes, 0, False
        conv, gate = self.conversation, self.gate
        sending = self._sending()
        mic_open = sending and conv.mic_open(self.clock())
        if mic_open and self._muted:  # open again: nothing heard while it was closed goes up (its pre-roll, a vetting)
            gate.forget_heard()
        self._muted = sending and not mic_open
        gated_through, debt = gate.frames_sent, gate.debt
        out, admitted = self.mic.hear(frame, captured_at)  # may dispatch VisitorSpeech
        held_led, self._held_led = self._held_led, self._held_led if gate.held_frames else 0
        if not sending:
            return
        if mic_open and admitted:  # the microphone's frames the gate let through (pre-roll too), not its silence
            self.counters["frames_uplinked"] += gate.frames_sent - gated_through
        else:  # one frame of silence for it, whatever the gate made of it: no burst went ahead, nothing is paid back
            out, gate.debt = (gate.silence,), debt
        if led and not out and gate.held_frames:  # the gate holds it back: its rest goes when what it holds goes (or as silence)
            self._held_led = led
            gate.start_went_ahead(led)
        elif led or (held_led and not self._held_led):  # (what the gate held went now, or silence for it: its first frame's start had gone)
            if not out:  # the gate paid pre-roll back with it, but its start went: the rest goes (as silence), the debt waits
                out = (gate.silence,)
                gate.debt += 1
            out = (*out[:-1], out[-1][led:]) if led else (out[0][held_led:], *out[1:])
        self.uplink.send(out, captured_at, conv.holding)

    def lead(self, pcm: bytes, captured_at: float) -> None:
        """The start of a frame still being captured, right after a press (`AudioSource.hurry`):
        through a gate the press opened (`vad.press_opens_ms`) it goes now (see MicPath.lead).
        What goes ahead is always the frame's start: once a part waits for the frame (an earcon
        in it, the microphone muted), the parts after it wait too, or the frame's rest would send
        them a second time and leave the part that waited out."""
        if self._lead_withheld or not self._sending():
            self._lead_withheld = True
            return
        conv = self.conversation
        lead = self.mic.lead(pcm, captured_at) if conv.mic_open(self.clock()) else b""
        self._lead_withheld = len(lead) < len(pcm)
        if lead:
            self.led_bytes += len(lead)
            self.uplink.send((lead,), captured_at - (len(pcm) - len(lead)) / (2 * SAMPLE_RATE_HZ), conv.holding)
