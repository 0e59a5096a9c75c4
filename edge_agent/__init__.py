"""edge-agent: a Raspberry Pi voice kiosk daemon that talks to a hosted Millis AI voice agent.

A visitor presses the button and talks; the next press continues the stored session.
"""

__version__ = "0.1.0"

SAMPLE_RATE_HZ = 16_000
"""The wire format of the Millis protocol and of every internal audio path: 16 kHz mono int16."""

SAMPLE_WIDTH_BYTES = 2

BYTES_PER_S = SAMPLE_RATE_HZ * SAMPLE_WIDTH_BYTES
"""Bytes of 16 kHz mono int16 audio per second (32 000): audio lengths in bytes to seconds."""
