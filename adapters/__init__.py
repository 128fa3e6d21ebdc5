"""One module per provider: verify, parse into hub.model events, send."""
