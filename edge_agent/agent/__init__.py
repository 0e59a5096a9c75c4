"""The agent link: the WebSocket client speaking the Millis protocol, and the optional warm standby."""
