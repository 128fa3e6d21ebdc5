"""``channelhub channels ...`` and ``channelhub emulate ...``: provider-facing commands.

``channels check`` asks every configured account's provider whether its
credentials work; ``channels connect viber ACCOUNT`` registers the bot's
webhook. ``emulate`` runs the provider emulators standalone and ``emulate say``
makes an emulated customer write to the hub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from hub.command_args import add_config_argument, settings_from_args
from hub.errors import AdapterError, ConfigError
from hub.model import ChannelAccount
from hub.settings import Narrowing, Settings

__all__ = ["register_channels", "register_emulate"]

_CHECK_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)


# ------------------------------------------------------------------ channels


def register_channels(subparsers: Any) -> None:
    channels = subparsers.add_parser("channels", help="check accounts against their providers, register webhooks")
    commands = channels.add_subparsers(dest="channels_command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="verify each account's credentials with its provider")
    add_config_argument(check)
    check.set_defaults(handler=_check)

    connect = commands.add_parser("connect", help="register the webhook URL with the provider (Viber)")
    connect.add_argument("provider", choices=["viber"], help="the provider (only Viber is registered by API)")
    connect.add_argument("account", help="the account id in the configuration")
    connect.add_argument("--url", help="the webhook URL (default: server.public_url + /webhooks/viber/ACCOUNT)")
    add_config_argument(connect)
    connect.set_defaults(handler=_connect)


def _check(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if not settings.accounts:
        print("no accounts are configured")
        return 0
    results = asyncio.run(_check_all(settings))
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


async def _check_all(settings: Settings) -> list[tuple[bool, str]]:
    """One (ok, line) per account, in configuration order; the accounts are asked concurrently."""
    from hub.registry import build_adapter

    async with aiohttp.ClientSession(timeout=_CHECK_TIMEOUT) as session:

        async def one(account: ChannelAccount) -> tuple[bool, str]:
            label = f"{account.id} ({account.adapter_name})"
            try:
                adapter = build_adapter(account, session)
                description = await adapter.check()
            except (AdapterError, ConfigError) as exc:
                return False, f"{label} FAILED: {_explain(exc)}"
            return True, f"{label} ok: {description}"

        return list(await asyncio.gather(*(one(account) for account in settings.accounts)))


def _explain(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    code = getattr(exc, "provider_code", None)
    if reason:
        return f"{reason} ({code})" if code else str(reason)
    return str(exc)


def _connect(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        account = settings.account(args.account)
    except KeyError:
        print(f"channelhub: no account {args.account!r} is configured", file=sys.stderr)
        return 2
    if account.adapter_name != "viber":
        print(f"channelhub: {account.id} is a {account.adapter_name} account, not Viber", file=sys.stderr)
        return 2
    url = args.url or f"{settings.server.public_url.rstrip('/')}/webhooks/viber/{account.id}"
    try:
        asyncio.run(_set_webhook(account, url))
    except AdapterError as exc:
        print(f"channelhub: Viber refused the webhook for {account.id}: {_explain(exc)}", file=sys.stderr)
        return 1
    print(f"{account.id}: Viber now calls {url}")
    return 0


async def _set_webhook(account: ChannelAccount, url: str) -> None:
    from adapters.viber import ViberAdapter

    async with aiohttp.ClientSession(timeout=_CHECK_TIMEOUT) as session:
        await ViberAdapter(account, session).set_webhook(url)


# ------------------------------------------------------------------- emulate


def register_emulate(subparsers: Any) -> None:
    emulate = subparsers.add_parser("emulate", help="run the provider emulators (offline demo, tests)")
    add_config_argument(emulate)
    emulate.add_argument("--host", help="listen address (default: demo.emulator_host)")
    emulate.add_argument("--port", type=int, help="listen port (default: demo.emulator_port)")
    emulate.set_defaults(handler=_emulate)
    commands = emulate.add_subparsers(dest="emulate_command", required=False, metavar="COMMAND")

    say = commands.add_parser("say", help="make an emulated customer write to the hub")
    add_config_argument(say)
    say.add_argument("--channel", choices=["whatsapp", "messenger", "viber"], help="pick the first account of it")
    say.add_argument("--account", help="the account id (default: the first of --channel)")
    say.add_argument("--from", dest="sender", required=True, help="the customer: +E.164 number, PSID or Viber id")
    say.add_argument("--name", help="the customer's display name")
    say.add_argument("--kind", default="text", help="text (default), image, file, location, ... or a Viber event")
    say.add_argument("--media-url", help="a media URL for image/video/file messages")
    say.add_argument(
        "--payload",
        help="press a quick reply or button: its payload (with --kind quick_reply or postback on Messenger, "
        "button_reply or list_reply on WhatsApp Cloud, button on Twilio; on Viber a button sends its payload as text)",
    )
    say.add_argument("--repeat", type=int, default=1, help="deliver the same webhook this many times (a few)")
    say.add_argument("--emulator", help="the running emulator (default: http://demo.emulator_host:emulator_port)")
    say.add_argument("--direct", action="store_true", help="no emulator: sign and post the webhook to the hub")
    say.add_argument("text", nargs="?", help="what the customer writes")
    say.set_defaults(handler=_say)


def _emulate(args: argparse.Namespace) -> int:
    from aiohttp import web

    from adapters.emulators.core import EmulatorState, build_emulator_app

    settings = settings_from_args(args)
    host = args.host or settings.demo.emulator_host
    port = args.port or settings.demo.emulator_port
    state = EmulatorState(settings, settings.server.public_url)
    print(f"provider emulators on http://{host}:{port} calling the hub at {settings.server.public_url}")
    for account in settings.accounts:
        print(f"  {account.id} ({account.adapter_name}) api_base {account.api_base}")
    web.run_app(build_emulator_app(state), host=host, port=port, print=None, access_log=None)
    return 0


def _say(args: argparse.Namespace) -> int:
    from adapters.emulators.core import MAX_REPEAT

    settings = settings_from_args(args, narrow=_say_reads(args.account, args.channel, direct=args.direct))
    if not args.account and not args.channel:
        print("channelhub: give --channel or --account", file=sys.stderr)
        return 2
    if not 1 <= args.repeat <= MAX_REPEAT:
        print(f"channelhub: --repeat must be from 1 to {MAX_REPEAT}", file=sys.stderr)
        return 2
    request: dict[str, Any] = {"from": args.sender, "text": args.text, "kind": args.kind, "repeat": args.repeat}
    for key, value in (("account", args.account), ("channel", args.channel), ("name", args.name)):
        if value:
            request[key] = value
    if args.media_url:
        request["media_url"] = args.media_url
    if args.payload:
        request["payload"] = args.payload
    try:
        if args.direct:
            status, answer = asyncio.run(_say_direct(settings, request))
        else:
            base = args.emulator or f"http://{settings.demo.emulator_host}:{settings.demo.emulator_port}"
            status, answer = asyncio.run(_say_via_emulator(base.rstrip("/"), request))
    except (aiohttp.ClientError, OSError) as exc:
        print(f"channelhub: could not reach the emulator or the hub: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0 if status == 200 and answer.get("status") == 200 else 1


#: the tables ``emulate say`` reads besides its account: where the emulator and the hub listen, and what
#: an account entry is checked against (its queue); none of them holds a secret
_SAY_TABLES = ("server", "queues", "statuses", "log_level", "log_format")


def _say_reads(account_id: str | None, channel: str | None, *, direct: bool) -> Narrowing:
    """The part of the configuration ``emulate say`` reads: the tables above, where the emulator listens,
    and -- with ``--direct``, which signs the webhook itself -- the one account it speaks as.

    So only that account's ``env:`` secrets must be set (a missing one is named by the usual configuration
    error); other accounts, bots, outgoing webhooks, the database and the demo logins are not read, and a
    secret of theirs kept in the environment of the hub's host need not be copied to where this runs.
    Through the emulator no secret at all is read: the emulator has its own configuration."""

    def narrow(raw: dict[str, Any]) -> dict[str, Any]:
        kept = {key: raw[key] for key in _SAY_TABLES if key in raw}
        demo = raw.get("demo", {})
        if isinstance(demo, dict):
            kept["demo"] = {key: demo[key] for key in ("emulator_host", "emulator_port") if key in demo}
        if direct:
            kept["accounts"] = _say_account(raw.get("accounts", []), account_id, channel)
        return kept

    return narrow


def _say_account(entries: Any, account_id: str | None, channel: str | None) -> list[Any]:
    """The entry ``_pick`` would pick, as a list of it (empty when there is none: ``unknown_account``)."""
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        if account_id and str(entry.get("id")) == account_id:
            return [entry]
        if not account_id and channel and entry.get("channel") == channel:
            return [entry]
    return []


async def _say_via_emulator(base: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=_CHECK_TIMEOUT) as session,
        session.post(f"{base}/_emulator/say", json=request) as response,
    ):
        answer = await response.json(content_type=None)
        return response.status, answer if isinstance(answer, dict) else {"answer": answer}


async def _say_direct(settings: Settings, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Without a running emulator: build, sign and post the webhook from here."""
    from adapters.emulators.core import PROVIDER_MODULES, EmulatorState, provider_module

    state = EmulatorState(settings, settings.server.public_url)
    try:
        account = _pick(settings, request.get("account"), request.get("channel"))
        if account is None:
            return 404, {"error": {"code": "unknown_account", "message": "no such account is configured"}}
        module = provider_module(PROVIDER_MODULES[account.adapter_name])
        if module is None:
            return 501, {"error": {"code": "no_emulator", "message": f"no emulator for {account.adapter_name}"}}
        try:
            result: dict[str, Any] = await module.say(
                state,
                account,
                request["from"],
                request.get("text"),
                kind=request.get("kind", "text"),
                media_url=request.get("media_url"),
                name=request.get("name"),
                repeat=int(request.get("repeat", 1)),
                **({"payload": request["payload"]} if request.get("payload") else {}),
            )
        except ValueError as exc:  # a kind or a sender the provider does not have: as the emulator answers it
            return 400, {"error": {"code": "bad_request", "message": str(exc)}}
        return 200, {"account": account.id, **result}
    finally:
        await state.close()


def _pick(settings: Settings, account_id: str | None, channel: str | None) -> ChannelAccount | None:
    for account in settings.accounts:
        if account_id and account.id == account_id:
            return account
        if not account_id and channel and account.channel.value == channel:
            return account
    return None
