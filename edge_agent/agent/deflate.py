"""SilenceDeflate: permessage-deflate for the agent link that compresses only what shrinks.

With `agent.compression` on, the link offers this extension instead of websockets' plain one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

UPLINK_DEFLATE = {"memLevel": 5, "level": 1, "strategy": zlib.Z_RLE}
"""zlib settings for what we do compress: the gate's silence (to ~1 %) and JSON messages."""


class SilenceDeflate(PerMessageDeflate):
    """permessage-deflate (agent.compression) that compresses only what shrinks.

    While the gate is closed the kiosk streams digital silence, which deflate shrinks to ~1 %:
    a closed gate then costs next to no bandwidth. Speech shrinks by ~8 % at most, for ~90 us of
    CPU per 30 ms frame on a small core, so audio that is not all zeros goes out as an
    uncompressed message (RSV1 unset), which RFC 7692 allows at any time; text still shrinks.
    """

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode is Opcode.BINARY and frame.fin and bytes(frame.data).strip(b"\0"):
            return frame  # audio that is not silence: as it is
        return super().encode(frame)


class SilenceDeflateFactory(ClientPerMessageDeflateFactory):
    """Offers permessage-deflate like websockets' own client and runs it as SilenceDeflate."""

    def __init__(self) -> None:
        super().__init__(compress_settings=UPLINK_DEFLATE)

    def process_response_params(self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]) -> PerMessageDeflate:
        agreed = super().process_response_params(params, accepted_extensions)
        return SilenceDeflate(
            agreed.remote_no_context_takeover,
            agreed.local_no_context_takeover,
            agreed.remote_max_window_bits,
            agreed.local_max_window_bits,
            UPLINK_DEFLATE,
        )
