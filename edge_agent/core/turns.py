"""Turns: who may speak in a live conversation, and when it has gone quiet.

Sans-I/O bookkeeping for `Conversation` (core/conversation.py), which keeps the states and moves
between them (listening <-> speaking). The visitor's side: their speech as the gate hears it, a
held push-to-talk button, the microphone muted under half duplex while the agent speaks and for
`duplex_tail_s` after. The agent's side: its reply on the live link (a pause, a clear, the latency
from `start_answering` to its first audio, final transcripts as events). The idle timeout counts
from the last thing either side (or the link) did.
"""

from __future__ import annotations

from edge_agent.core import protocol as p
from edge_agent.core.events import Action, Notify, Play, Playback
from edge_agent.core.timing import Timing


class Turns:
    """The turn-taking of the current conversation (of the last one while idle)."""

    def __init__(self) -> None:
        self.activity_at = 0.0
        """When the visitor, the agent or the link last did something (the idle timeout's start)."""
        self.visitor_speaking = False
        self.talk_held = False
        self.spoke_while_held = False
        self.mute_until = 0.0
        self.answering_at: float | None = None
        self.paused = False

    def begin(self, now: float) -> None:
        """A conversation starts: the agent's reply not paused, activity counted from now, and no
        `start_answering` of the last one waiting for its audio (the first audio of this one
        was told as that one's reply latency, minutes or hours long)."""
        self.paused = False
        self.answering_at = None
        self.activity_at = now

    def mic_open(self, t: Timing, agent_speaking: bool, now: float) -> bool:
        """Whether the visitor may be heard now (push-to-talk held, not muted under half duplex)."""
        if t.push_to_talk and not self.talk_held:
            return False
        return not (t.duplex_half and (agent_speaking or now < self.mute_until))

    def talk(self, held: bool, now: float) -> None:
        """The push-to-talk button held or released. A hold the gate is already open on (the
        visitor began a sentence a moment before pressing) is spoken in: with no new "speech"
        from the gate during it, a long one was taken for silent and hung up on them."""
        self.talk_held = held
        self.activity_at = now
        if held:
            self.spoke_while_held = self.visitor_speaking

    def heard(self, active: bool, now: float) -> None:
        """The gate opened on the visitor (or closed)."""
        self.visitor_speaking = active
        self.activity_at = now
        if active and self.talk_held:
            self.spoke_while_held = True

    def agent_stopped(self, now: float, t: Timing) -> None:
        """The agent's voice stopped (drained, or cleared): muted under half duplex for its tail."""
        self.mute_tail(now, t)
        self.activity_at = now

    def link_lost(self, now: float, t: Timing, agent_speaking: bool) -> None:
        """The link dropped and is reopened: its clear of the speaker un-pauses it (held paused,
        the next reply timed out as idle) and ends the reply that had started (its first audio on
        the continued session was told as a latency the length of the reconnect); muted for the
        tail when the agent was speaking (its last words may still ring in the room)."""
        self.paused = False
        self.answering_at = None
        if agent_speaking:
            self.mute_tail(now, t)

    def mute_tail(self, now: float, t: Timing) -> None:
        """Muted under half duplex for `duplex_tail_s` from now: the agent's last words may still
        ring in the room (its voice stopped, or the link dropped while it spoke)."""
        self.mute_until = now + t.duplex_tail_s

    def agent_said(self, msg: p.ServerMessage, now: float, out: list[Action]) -> bool:
        """A message of the agent's on the live link (not `onready` nor `onsessionended`); True
        for a clear: what it was saying is dropped, it stops speaking."""
        if isinstance(msg, p.Clear):
            out.append(Playback("clear"))
            self.answering_at = None
            self.paused = False
            return True
        if isinstance(msg, (p.Pause, p.Unpause)):
            self.paused = isinstance(msg, p.Pause)
            out.append(Playback("pause" if self.paused else "unpause"))
        elif isinstance(msg, p.StartAnswering):
            self.answering_at = now
            self.activity_at = now
        elif isinstance(msg, p.FunctionCall):  # the agent at work on the visitor's request (a lookup may take a while)
            self.activity_at = now
        elif isinstance(msg, (p.Transcript, p.ResponseText)):
            self.activity_at = now
            kind = "transcript" if isinstance(msg, p.Transcript) else "response_text"
            if msg.is_final:
                out.append(Notify(kind, {"text": msg.text}))
        return False

    def agent_audio(self, pcm: bytes, now: float, out: list[Action]) -> None:
        """The agent's audio to play (the first after `start_answering`: its latency told)."""
        self.activity_at = now
        if self.answering_at is not None:
            out.append(Notify("response_latency", {"ms": round((now - self.answering_at) * 1000.0, 1)}))
            self.answering_at = None
        out.append(Play(pcm))

    def idle(self, now: float, t: Timing, listening: bool) -> bool:
        """Nobody has said anything for `idle_timeout_s` while the agent listens (or is paused)."""
        return (listening or self.paused) and not self.visitor_speaking and not self.talk_held and now - self.activity_at >= t.idle_timeout_s
