"""A helper's attack on the day's changes (attack12): what held is in its report; what did not, here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Broker, make_certs


def test_fleet_does_not_call_ignored_the_password_and_ca_file_its_options_put_to_use(tmp_path: Path) -> None:
    """`fleet -c kiosk.toml --username admin --tls` with EDGE_AGENT_MQTT_PASSWORD (as the README
    offers it): the config's warnings are worked out from the file alone, so the command said
    `ignoring EDGE_AGENT_MQTT_PASSWORD ... mqtt.username is not set` and `ignoring mqtt.ca_file ...
    connects without TLS` while it logged in as admin with that password over TLS with that CA
    file: an admin told their password went unused (and their fleet unencrypted) that did not."""
    certs = make_certs(tmp_path)
    broker = Broker.with_password(tmp_path, "admin", "pw", extra=f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n")
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\nca_file = "{certs["ca.crt"]}"\n')
    env = {**os.environ, "EDGE_AGENT_MQTT_PASSWORD": "pw"}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "edge_agent", "fleet", "-c", str(cfg), "--username", "admin", "--tls", "--json", "--wait-s", "0.3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        broker.kill()
    assert r.returncode == 0 and '"kiosks"' in r.stdout, r.stderr  # in: the password and the CA file were used
    assert "ignoring" not in r.stderr, r.stderr
