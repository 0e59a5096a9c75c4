"""Development tools: the agent simulator, the fault-injecting proxy, a throw-away mosquitto, the demo."""
