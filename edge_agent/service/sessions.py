"""The `edge-agent sessions` command: the stored sessions listed, newest first, or forgotten (`--forget`).

Run by the command line (cli.py) when asked for, as the echo check and the doctor are. It reads
any state dir it is given without making one, and the store read-only (as root too: no file left
behind); a forget refuses while a kiosk holds the dir, since it would continue the session it
keeps in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from edge_agent.core import config
from edge_agent.core.logs import printable
from edge_agent.errors import StoreError, UsageError

MAX_SHOWN_CHARS = 200
"""A stored value listed longer than this ends in `...` (our ids are at most 128 characters)."""


def cmd_sessions(args: argparse.Namespace) -> int:
    from edge_agent.core.store import DB_NAME, SessionStore
    from edge_agent.core.storeread import recent_read_only

    settings = config.load_logged(args.config, args.log_level)
    try:
        state_dir = Path(args.state_dir).expanduser() if args.state_dir else settings.device.state_dir
    except RuntimeError:  # `--state-dir '~nosuchuser'` (quoted, or a user the shell did not know): was exit 70
        raise UsageError(f"--state-dir {args.state_dir}: no such user's home directory") from None
    # a typo'd path must not read as "nothing stored"; the config's own state dir may be missing
    # before the kiosk's first run (systemd's StateDirectory= makes it), and then nothing is stored
    if not args.state_dir:
        settings.device.require_state_dir()
    else:
        _check_state_dir_option(state_dir, DB_NAME)
    try:
        stored = (state_dir / DB_NAME).exists()
    except OSError as exc:  # another owner's 0700 state dir (the service's, for an operator): exit 70 before
        raise StoreError(f"cannot read {state_dir}: {exc.strerror or exc}: run as the service's user (sudo -u edge-agent) or root") from None
    if not stored:  # reading must not create a state dir (as root: /var/lib/edge-agent)
        if args.json:
            print(json.dumps({"forgotten": 0} if args.forget else []))
        else:
            print(f"no sessions stored in {state_dir}")
        return 0
    if args.forget:
        from edge_agent.service.instance import AnotherDaemon, claim, held_by

        def running(holder: str) -> StoreError:  # it remembers the last session: its next press continued it
            return StoreError(
                f"{holder} runs with {state_dir}: it keeps the last session in memory and would continue it; "
                "forget through it (the MQTT command forget_sessions) or stop it first (sudo systemctl stop edge-agent)"
            )

        if (holder := held_by(state_dir)) is not None:
            raise running(f"an edge-agent ({holder})")
        try:  # held for the whole wipe: a kiosk started meanwhile (systemd's Restart=, a reboot) waits or refuses
            lock = claim(state_dir)
        except AnotherDaemon as exc:
            raise running(exc.holder) from None
        store = SessionStore(state_dir, settings.session.keep_sessions)
        try:
            if store.fault is not None:  # a wipe of a copy in memory would mislead
                raise StoreError(f"session store unusable: {store.fault}")
            if settings.session.share and settings.mqtt.enabled:  # the fleet's copies first
                from edge_agent.fleet.forget import clear_pointers, forgets_of, slot_sessions

                print(clear_pointers(settings.mqtt, forgets_of(slot_sessions(store.recent(store.keep_sessions)), time.time(), None)))
            count = store.forget(scrub_wait_s=2.0)
            if store.wipe_pending:  # the disk went away mid-wipe (another writer's lock): a wipe this process would lose at exit
                raise StoreError(f"sessions NOT forgotten on disk: {store.fault or 'the store became unusable'}; try again (stop the service first)")
            if store.scrub_pending:  # deleted, but their pages are still on the card
                raise StoreError(f"forgot {count} sessions in {state_dir}, but NOT scrubbed from the card: another program is reading the store; run this again once it is done")
            print(json.dumps({"forgotten": count}) if args.json else f"forgot {count} sessions in {state_dir}")
            return 0
        finally:
            store.close()
            if lock is not None:
                os.close(lock)
    # read-only: `sudo edge-agent sessions` must leave no root-owned file in the service's state dir
    rows = recent_read_only(state_dir / DB_NAME, args.limit)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1))
        return 0
    if not rows:
        print(f"no sessions stored in {state_dir}")
        return 0
    print(f"{'started':<19} {'length':>8} {'ended by':<12} agent/slot session")
    for r in rows:  # the store's text as `?` where not printable: a row anyone with the service's rights wrote (escape codes, a CR) reached root's terminal
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at))
        dur = f"{r.ended_at - r.started_at:7.1f}s" if r.ended_at else "   open "
        cont = f" continues {_shown(r.continued_from)}" if r.continued_from else ""
        print(f"{started} {dur} {_shown(r.end_reason or '-'):<12} {_shown(r.agent)}/{_shown(r.slot)} {_shown(r.id)}{cont}")
    return 0


def _shown(text: str) -> str:
    return printable(text, MAX_SHOWN_CHARS)


def _check_state_dir_option(state_dir: Path, db_name: str) -> None:
    """UsageError naming `--state-dir` unless it is an existing dir. Its stat raising (a dir under
    one this user may not search, the service's 0700 state dir to an operator: EACCES; a name too
    long) ended in `unexpected error: ... report it`, exit 70: Python 3.11's `Path.exists` raises
    for all but a missing path."""
    try:
        exists, is_dir = state_dir.exists(), state_dir.is_dir()
    except OSError as exc:
        raise UsageError(f"--state-dir {state_dir}: cannot look at it: {exc.strerror or exc}") from None
    if not exists:
        raise UsageError(f"--state-dir {state_dir}: does not exist")
    if not is_dir:
        raise UsageError(f"--state-dir {state_dir}: not a directory (a state dir holds {db_name})")
