"""The broker side of a locked-down fleet: per-kiosk Mosquitto credentials and the ACL.

`edge-agent provision NAME` makes a broker user (a kiosk: NAME = its device.id; or an operator,
or Home Assistant): a random password written to `NAME.mqtt_password` (mode 0600, for the kiosk's
`mqtt.password_file`) and the Mosquitto password-file line (PBKDF2-SHA512, the `$7$` format
`mosquitto_passwd` writes), printed or put into a password file in place of the user's old line.
A password file that cannot be updated is refused before anything is written: a failed run leaves
no password file behind for the corrected one to trip over.

`edge-agent broker-acl` prints the Mosquitto ACL: a kiosk reads only its own `cmd` and Home
Assistant's birth topic, writes only its own subtree and its own discovery configs (which it also
reads, to clear stale ones), and reads and writes the fleet's shared session pointers
(`<prefix>/_sessions/<agent>/<slot>` and its `/forgotten`, `[session] share`: nothing else, or
`_sessions/state` was a kiosk in the fleet); operators and Home Assistant read everything and write
commands, operators also a retired kiosk's retained topics (to clear them). A user already in the
password file is given a new password only with `--rotate`, as one already in `--dir`.
Kiosk rules are `pattern` lines keyed by the user name (`%u`), so one ACL serves the whole fleet
as long as each kiosk's broker user name is its device id.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge_agent.core import config
from edge_agent.core.config import DEVICE_ID_RE, DEVICE_ID_RULE, SHARED_SESSIONS_LEVEL
from edge_agent.core.statefiles import same_file, write_private
from edge_agent.errors import EdgeAgentError, UsageError

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's own default; the 192-bit random password is the strength
SALT_BYTES = 12


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The password-file hash Mosquitto 2 reads: `$7$<iterations>$<base64 salt>$<base64 sha512 pbkdf2>`."""
    import base64  # here, not at the top: the command line imports this module for every command
    import hashlib
    import secrets

    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(topic_prefix: str, discovery_prefix: str, admins: list[str], ha_users: list[str]) -> str:
    """The Mosquitto ACL file for a fleet under `topic_prefix` (see the module docstring)."""
    from edge_agent.fleet.pointer import FORGOTTEN_LEVEL  # here: the command line imports this module for every command

    lines = [
        "# edge-agent fleet ACL (edge-agent broker-acl). Kiosks: broker user name = device.id.",
        "# A kiosk reads only its own commands and Home Assistant's birth message,",
        "# writes only its own subtree, and reads/writes only its own discovery configs.",
        f"pattern read {topic_prefix}/%u/cmd",
        f"pattern write {topic_prefix}/%u/#",
        f"pattern read {discovery_prefix}/status",
        f"pattern readwrite {discovery_prefix}/+/edge_agent_%u/+/config",
        "# Shared session pointers ([session] share): every kiosk of the fleet reads and writes them.",
        "# Only pointers and forgets: `_sessions/#` took in `_sessions/state`, a phantom kiosk in the fleet.",
        f"pattern readwrite {topic_prefix}/{SHARED_SESSIONS_LEVEL}/+/+",
        f"pattern readwrite {topic_prefix}/{SHARED_SESSIONS_LEVEL}/+/+/{FORGOTTEN_LEVEL}",
        "",
    ]
    for user in admins:
        # a retired kiosk's retained availability and state are an operator's to clear (README)
        lines += ["# operator: sees every kiosk, sends commands, clears a retired kiosk's topics", f"user {user}", "topic read #", f"topic write {topic_prefix}/+/+", ""]
    for user in ha_users:
        lines += [
            "# Home Assistant: reads everything, presses the kiosks' buttons, owns its discovery tree",
            f"user {user}",
            "topic read #",
            f"topic write {topic_prefix}/+/cmd",
            f"topic readwrite {discovery_prefix}/#",
            "",
        ]
    return "\n".join(lines)


def password_lines(passwd: Path) -> list[str]:
    """The lines of a Mosquitto password file about to be updated (none when it does not exist
    yet), once it is known it can be: a file, or nothing yet, in a directory that exists and takes
    new files (the update is a temporary file renamed over it). EdgeAgentError naming it if not."""
    parent = passwd.parent
    try:  # Python 3.11's is_dir/exists raise for all but a missing path: `--passwd /etc/mosquitto/passwd`
        # without sudo (a dir 0750 root:mosquitto, EACCES) or a name too long was `unexpected error`, exit 70
        parent_is_dir, exists, is_file = parent.is_dir(), passwd.exists(), passwd.is_file()
    except OSError as exc:
        raise EdgeAgentError(f"cannot update {passwd}: {exc.strerror or exc}") from None
    if not parent_is_dir:
        raise EdgeAgentError(f"cannot update {passwd}: no directory {parent}")
    if exists and not is_file:
        raise EdgeAgentError(f"cannot update {passwd}: not a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EdgeAgentError(f"cannot update {passwd}: {parent} is not writable (the file is replaced by a new one written beside it)")
    try:
        return passwd.read_text(encoding="utf-8").splitlines() if exists else []
    except OSError as exc:
        raise EdgeAgentError(f"cannot update {passwd}: {exc.strerror or exc}") from None
    except ValueError:
        raise EdgeAgentError(f"cannot update {passwd}: not a text file (a Mosquitto password file is user:hash lines)") from None


def set_password_line(passwd: Path, user: str, hashed: str, old: list[str] | None = None) -> None:
    """Adds `user:hashed` to a Mosquitto password file, replacing the user's old line (`old`: its
    lines, from `password_lines`; read here when not given). A new file is mode 0600; an existing
    one keeps its mode, owner and group (mosquitto must still read it)."""
    old = password_lines(passwd) if old is None else old
    try:
        kept = [line for line in old if line.split(":", 1)[0] != user]
        write_private(passwd, "\n".join([*kept, f"{user}:{hashed}"]) + "\n", keep_mode=True)  # a new name each time: a link at a fixed `.tmp` name was written through
    except OSError as exc:
        raise EdgeAgentError(f"cannot update {passwd}: {exc.strerror or exc}") from None


def provision(name: str, out_dir: Path, passwd: Path | None, rotate: bool) -> tuple[Path, str]:
    """Makes `name`'s password file in `out_dir`; returns it and the password-file line."""
    if not DEVICE_ID_RE.fullmatch(name):
        # an argument, not a config (exit 2); the whole rule: `kiosk_` was told to use the characters it used
        raise UsageError(f"NAME: use a valid device id ({DEVICE_ID_RULE}), got {name!r}")
    secret_file = out_dir / f"{name}.mqtt_password"
    try:  # exists() raises on Python 3.11 for all but a missing path (a --dir under one not searchable: EACCES)
        if out_dir.exists() and not out_dir.is_dir():  # was `cannot write FILE/NAME.mqtt_password: File exists`
            raise UsageError(f"--dir {out_dir}: not a directory (NAME.mqtt_password is written into it)")
        existed = secret_file.exists()
    except OSError as exc:  # was `unexpected error: PermissionError`, exit 70
        raise EdgeAgentError(f"cannot write {secret_file}: {exc.strerror or exc}") from None
    if passwd is not None and same_file(passwd, secret_file):  # the hash line written over the password: exit 0, no password anywhere
        raise UsageError(f"--passwd {passwd} is {name}'s own password file: give Mosquitto's password file (e.g. /etc/mosquitto/passwd)")
    if existed and not rotate:
        raise EdgeAgentError(f"{secret_file} exists: pass --rotate to make a new password for {name}")
    old_lines = password_lines(passwd) if passwd is not None else None  # before anything is written
    if old_lines and not rotate and any(line.split(":", 1)[0] == name for line in old_lines):
        # another --dir (it defaults to `.`) replaced a password in use without a word
        raise EdgeAgentError(f"{passwd} has a password for {name}: pass --rotate to make a new one")
    import secrets

    password = secrets.token_urlsafe(24)
    hashed = mosquitto_hash(password)
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # made for passwords: 0755 listed them to every user
        write_private(secret_file, password + "\n", keep_mode=True)
    except OSError as exc:
        raise EdgeAgentError(f"cannot write {secret_file}: {exc.strerror or exc}") from None
    if passwd is not None:
        try:
            set_password_line(passwd, name, hashed, old_lines)
        except EdgeAgentError:
            if not existed:  # failed after the check (a full disk): a retry must not find it
                secret_file.unlink(missing_ok=True)
            raise
    return secret_file, f"{name}:{hashed}"




def cmd_provision(args: argparse.Namespace) -> int:
    secret_file, line = provision(args.name, Path(args.dir), Path(args.passwd) if args.passwd else None, args.rotate)
    if not args.passwd:
        try:  # `provision kiosk-7 >> /etc/mosquitto/passwd` on a full card: the password was kept, its
            print(line, flush=True)  # line lost, and running it again needed --rotate
        except OSError:
            secret_file.unlink(missing_ok=True)  # the broker has no line for it: nobody can use it
            raise
    mode = secret_file.stat().st_mode & 0o777  # a rotated file keeps its mode (a 0640 the service reads): said as it is
    print(f"password for broker user {args.name!r} written to {secret_file} (mode {mode:04o})", file=sys.stderr)
    if args.passwd:
        print(f"{args.passwd}: line for {args.name!r} set; reload mosquitto (systemctl reload mosquitto)", file=sys.stderr)
    print(
        f"for a kiosk (device.id = {args.name!r}): [mqtt] username = {args.name!r}, password_file = the copied {secret_file.name} (owner root, group edge-agent, mode 0640);"
        f" for an operator or Home Assistant: log in as {args.name!r} with that password (broker-acl --admin / --ha-user {args.name})",
        file=sys.stderr,
    )
    return 0


def cmd_broker_acl(args: argparse.Namespace) -> int:
    m = config.load(args.config).mqtt
    for option, users in (("--admin", args.admin), ("--ha-user", args.ha_user)):
        for user in users:  # the option named: `--admin/--ha-user` left the operator to guess, and
            if not DEVICE_ID_RE.fullmatch(user):  # `_x` was "use letters, digits, - and _"
                raise UsageError(f"{option} {user!r}: use {DEVICE_ID_RULE}")
    sys.stdout.write(acl_text(m.topic_prefix, m.discovery_prefix, args.admin, args.ha_user))
    return 0
