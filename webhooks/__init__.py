"""Provider-facing aiohttp routes: read body -> verify -> parse -> store -> acknowledge."""
