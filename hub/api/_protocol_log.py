"""A request aiohttp could not parse is the client's fault: one INFO line, not an ERROR with a traceback.

aiohttp answers a request it cannot read — a request line over 8190 bytes, a byte a header may not hold,
``Transfer-Encoding`` beside ``Content-Length`` — with a 400 before any handler runs, and logs it on
``aiohttp.server`` at ERROR with the parser's traceback. Anyone who can reach the port could fill the
error log (and whatever alerts on it) with tracebacks that say nothing about the hub. This filter turns
such a record into one INFO line naming the reason; errors of the server's own stay as they are.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ClientProtocolErrors", "quiet_client_protocol_errors"]

_REASON_CHARACTERS = 200


class ClientProtocolErrors(logging.Filter):
    """Demote aiohttp's record of a request it refused with a 4xx to INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= exc.code < 500:
            return True
        reason = " ".join(str(exc.message).split())[:_REASON_CHARACTERS]
        record.msg = f"{record.getMessage()}: {exc.code} {reason}"
        record.args = None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


_FILTER = ClientProtocolErrors()


def quiet_client_protocol_errors() -> None:
    """Install the filter on aiohttp's server logger (once, whatever the number of apps)."""
    logging.getLogger("aiohttp.server").addFilter(_FILTER)
