"""Local stand-ins for the providers (Graph API, Twilio, Viber) for tests and the offline demo.

``core`` holds the shared state, the control API and the hub cleanup context;
one module per provider (``graph``, ``twilio``, ``viber``) adds that provider's
routes and knows how to play a customer writing in (``say``).
"""

from __future__ import annotations

from adapters.emulators.core import EmulatorState, SentRecord, build_emulator_app, demo_context

__all__ = ["EmulatorState", "SentRecord", "build_emulator_app", "demo_context"]
