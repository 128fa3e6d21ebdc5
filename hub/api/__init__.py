"""The hub's aiohttp corner: the HTTP server, the agent/admin API and the console."""
