"""The agent desktop: the screen pop pushed when an agent's phone starts ringing (live channel,
JSON API, outbound webhook), the agent's own controls (ready/pause, hold, transfer, wrap-up,
disposition) and the page they work from. Agents see only their own calls."""
