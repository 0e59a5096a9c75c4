"""The service: the Kiosk daemon glue, systemd notify and the set-up doctor."""
