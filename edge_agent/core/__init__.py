"""The appliance's core: the pure conversation state machine, the Millis protocol messages, configuration, the session store and the small interfaces the kiosk drives."""
