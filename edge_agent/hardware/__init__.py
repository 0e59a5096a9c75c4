"""Hardware adapters: gpiozero buttons and LEDs, keyboard and null buttons."""
