"""Hostile agent servers against the real kiosk through real sockets on loopback (2026-12-06, a
helper's attack on the agent link), each test failing before its fix."""

from __future__ import annotations

import array
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KioskThread, kiosk_settings, wait_for
from test_link_attacks import HostileServer, first_link_end, onready
from websockets.asyncio.server import ServerConnection

from edge_agent.core import conversation as c

TINY_MESSAGES = 160_000
"""2-byte audio messages before `onready`: 320 KB, within the link's 10 s of early audio."""


async def _tiny_greeting_then_ready(server: HostileServer, ws: ServerConnection) -> None:
    await server.initiate(ws)
    for _ in range(TINY_MESSAGES // 1000):
        for _ in range(1000):
            ws.protocol.send_binary(b"\x01\x00")
        ws.send_data()
        await asyncio.sleep(0)
    await asyncio.sleep(2.0)  # every message read and kept by the kiosk
    await ws.send(onready("sess-1"))
    await ws.wait_closed()


def test_early_audio_in_tiny_messages_does_not_stall_the_loop_at_onready(tmp_path: Path) -> None:
    """Audio before `onready` was kept message by message and handed on one event per message in
    the step that read `onready`: 320 KB in 2-byte messages (within EARLY_AUDIO_BYTES) became
    160 000 AgentAudio events, Conversation steps and speaker writes in one go, and the kiosk's
    event loop (pings, uplink, button, watchdog) stood still for 1.3 s on a PC, several times
    that on a Pi. Now it is played as one chunk."""
    with HostileServer(_tiny_greeting_then_ready) as srv:
        settings = kiosk_settings(tmp_path, srv.url, agent={"dead_after_s": 30.0, "ping_interval_s": 0.5, "connect_timeout_s": 2.0})
        with KioskThread(settings) as k:
            writes: list[int] = []
            write = k.kiosk.sink.buffer.write
            k.kiosk.sink.buffer.write = lambda pcm, reply=False, cue=False: (writes.append(len(pcm)) if reply else None, write(pcm, reply, cue))[1]  # type: ignore[method-assign]
            k.press()
            wait_for(lambda: sum(writes) >= 2 * TINY_MESSAGES, 30, "the early audio at the speaker")
            k.wait_state(c.SPEAKING)
    # one write per message held the loop 1.3 s here (timed in no test: the count is the cause)
    assert len(writes) <= 10, f"{len(writes)} writes to the speaker for one greeting"


def _redirect_to_tls(connection: object, request: object) -> object:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    port = connection.transport.get_extra_info("sockname")[1]  # type: ignore[attr-defined]
    return Response(301, "Moved Permanently", Headers([("Location", f"wss://127.0.0.1:{port}/"), ("Content-Length", "0")]), b"")


async def _never(server: HostileServer, ws: ServerConnection) -> None:
    await ws.wait_closed()


def test_a_redirect_from_ws_to_wss_is_not_reported_as_a_bad_endpoint(tmp_path: Path) -> None:
    """A `ws://` endpoint (the README's local simulator, or a proxy in front of one) answering the
    upgrade with a redirect to `wss://` (a server moved to TLS): the link passed `ssl=None` for
    every `ws://` endpoint, websockets refused to follow with "ssl=None is incompatible with a
    wss:// URI", a ValueError, and `classify` made that a fatal "bad endpoint" for a configuration
    that was fine (the error state at once, no retry): the mistake the README says redirects no
    longer cause. The TLS context is now only given for a `wss://` endpoint, so websockets follows
    the redirect with its own verified default context."""
    first = first_link_end(tmp_path, _redirect_to_tls, {"dead_after_s": 1.5, "ping_interval_s": 0.5, "connect_timeout_s": 1.0})
    assert "bad endpoint" not in str(first[1]), first


TONE = b"\x34\x12" * 8000  # 0.5 s of one sample value, 0x1234; its bytes swapped it is 0x3412
TONE_SENT = threading.Event()
ODD_SPLITS = (641, 639, 1, 1279, 3, 637)
"""Where the server cuts the tone: the protocol's "any chunk size", cut mid-sample."""


async def _ready_then_tone_in_odd_chunks(server: HostileServer, ws: ServerConnection) -> None:
    await server.initiate(ws)
    await ws.send(TONE[:3])  # before onready too: the greeting's last byte is half a sample
    await ws.send(onready("sess-1"))
    pos, i = 3, 0
    while pos < len(TONE):
        size = ODD_SPLITS[i % len(ODD_SPLITS)]
        await ws.send(TONE[pos : pos + size])
        pos, i = pos + size, i + 1
        await asyncio.sleep(0.001)
    TONE_SENT.set()
    await ws.wait_closed()


def _settled(played: list[bytes]) -> bool:
    """Nothing more reached the speaker for half a second."""
    before = len(played)
    time.sleep(0.5)
    return len(played) == before


def _samples_played(tmp_path: Path, serve: Any, sent: threading.Event, expected_bytes: int) -> array.array[int]:
    """The agent's audio as the kiosk wrote it to the speaker (whole samples), against `serve`,
    once `sent` says the server sent it all and `expected_bytes` arrived (or nothing more does)."""
    with HostileServer(serve) as srv:
        settings = kiosk_settings(tmp_path, srv.url, agent={"dead_after_s": 30.0, "ping_interval_s": 0.5, "connect_timeout_s": 2.0})
        with KioskThread(settings) as k:
            played: list[bytes] = []
            write = k.kiosk.sink.buffer.write
            k.kiosk.sink.buffer.write = lambda pcm, reply=False, cue=False: (played.append(pcm) if reply else None, write(pcm, reply, cue))[1]  # type: ignore[method-assign]
            k.press()
            assert sent.wait(15)
            wait_for(lambda: sum(map(len, played)) >= expected_bytes or _settled(played), 15, "the reply at the speaker")
    samples = array.array("h")
    for pcm in played:
        samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return samples


def test_agent_audio_cut_mid_sample_plays_as_sent(tmp_path: Path) -> None:
    """Binary messages are raw PCM "of any chunk size" (docs/millis-protocol.md). A message of an
    odd length lost its last byte at the speaker (playback.py: "never let it shift the stream"),
    and the next message, which began with that sample's other byte, played every sample with its
    bytes swapped: a server cutting its stream mid-sample made the rest of the reply full-scale
    noise. The link now carries the odd byte over to the next message of the same link."""
    samples = _samples_played(tmp_path, _ready_then_tone_in_odd_chunks, TONE_SENT, len(TONE) - 2)
    wrong = sum(1 for s in samples if s != 0x1234)
    assert wrong == 0, f"{wrong} of {len(samples)} samples of the tone played as something else (e.g. {[hex(s & 0xFFFF) for s in samples if s != 0x1234][:4]})"


@pytest.mark.parametrize("flaw", ["fragment", "user without password"])
def test_an_endpoint_websockets_cannot_connect_to_is_refused_at_start(tmp_path: Path, flaw: str) -> None:
    """`agent.endpoint` with a fragment (or a user name without a password) passed the config
    check, `run` reported ready, and every press then failed inside websockets' `connect`
    (InvalidURI) before any socket opened: `classify`, told the endpoint "was checked at start",
    blamed a redirect ("a captive portal or a proxy on the way?") and the conversation retried
    it for the whole reconnect window, the server never reached. Now it is a config error (78)."""
    from edge_agent.errors import ConfigError

    with HostileServer(_never) as srv:
        assert kiosk_settings(tmp_path, srv.url).agent.endpoint == srv.url  # the URL as it should be: fine
        bad = srv.url + "#eu" if flaw == "fragment" else srv.url.replace("ws://", "ws://kiosk@")
        with pytest.raises(ConfigError) as err:
            kiosk_settings(tmp_path, bad)
    assert err.value.key == "agent.endpoint", err.value


AFTER_CLEAR = b"\x78\x56" * 4000  # the next reply: 0x5678 (0x7856 a byte off)
REPLY_SENT = threading.Event()


async def _half_sample_then_clear(server: HostileServer, ws: ServerConnection) -> None:
    await server.initiate(ws)
    await ws.send(onready("sess-1"))
    await ws.send(TONE[:3])  # a reply cut mid-sample by the visitor's barge-in
    await ws.send('{"method": "clear"}')
    for at in range(0, len(AFTER_CLEAR), 640):
        await ws.send(AFTER_CLEAR[at : at + 640])
        await asyncio.sleep(0.001)
    REPLY_SENT.set()
    await ws.wait_closed()


def test_the_reply_after_a_clear_starts_on_a_whole_sample(tmp_path: Path) -> None:
    """The half sample a cleared reply ended on belongs to that reply: carried over the `clear`
    into the next reply, which starts on a whole sample, it shifted that whole reply by a byte
    (every sample played as noise)."""
    samples = _samples_played(tmp_path, _half_sample_then_clear, REPLY_SENT, 2 + len(AFTER_CLEAR))
    assert list(samples[:1]) == [0x1234] and samples.count(0x5678) == len(AFTER_CLEAR) // 2, [hex(s & 0xFFFF) for s in samples[:4]]
