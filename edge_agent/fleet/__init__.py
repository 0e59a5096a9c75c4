"""Fleet and MQTT: the status reporter, remote commands, Home Assistant discovery, metrics and the fleet view."""
