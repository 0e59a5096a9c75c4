"""Audio: device adapters (PyAudio, files, null), resampling, the speech gate and its scoring, earcons."""
