"""What an agent reads for WhatsApp Cloud's structured inbound messages: a Flows answer, a catalog order, a
shared contact card, a message Cloud API did not pass on. Each becomes plain text (and, where Meta sends more
than an agent should read, facts kept beside the message); the adapter (adapters/whatsapp_cloud.py) says which
message kind takes which."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters import _graph
from hub.errors import PayloadMalformed

__all__ = ["contacts_text", "flow_reply_text", "order_text", "text_or_none", "unsupported_text"]

_FLOW_TOKEN = "flow_token"  # noqa: S105 -- a field name, not a secret


def text_or_none(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None (a payload's optional text field)."""
    return value if isinstance(value, str) and value else None


def flow_reply_text(reply: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """A WhatsApp Flows answer (``nfm_reply``): its fields as "name: value" lines an agent reads.

    ``response_json`` is a JSON string chosen by the flow; one that does not parse is shown as sent.
    """
    raw = reply.get("response_json")
    facts: list[tuple[str, str]] = []
    if isinstance(reply.get("name"), str):
        facts.append(("flow_name", reply["name"]))
    lines: list[str] = []
    if isinstance(raw, str) and raw:
        facts.append(("flow_response", raw))
        try:
            fields = _graph.strict_json(raw.encode())
        except PayloadMalformed:
            fields = None
        if isinstance(fields, dict):
            for name, value in fields.items():
                if name == _FLOW_TOKEN:
                    facts.append((_FLOW_TOKEN, str(value)))
                    continue
                shown = value if isinstance(value, str) else _compact_json(value)
                lines.append(f"{name}: {shown}")
        else:
            lines.append(raw)
    heading = text_or_none(reply.get("body"))
    if not lines:
        return heading or "[flow reply]", facts
    return "\n".join(lines), facts


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, RecursionError):
        return str(type(value).__name__)


def order_text(order: Mapping[str, Any]) -> str:
    """An order from a catalog as an agent reads it: the customer's note, one line per item, the total."""
    lines = [order["text"]] if isinstance(order.get("text"), str) and order["text"] else []
    totals: dict[str, Decimal] = {}
    items = order.get("product_items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        product = str(item["product_retailer_id"]) if isinstance(item.get("product_retailer_id"), str | int) else "?"
        quantity = _amount(item.get("quantity"))
        price = _amount(item.get("item_price"))
        currency = item["currency"] if isinstance(item.get("currency"), str) else ""
        line = f"{_plain(quantity) if quantity is not None else '?'} x {product}"
        if price is not None:
            line += f" at {_plain(price)} {currency}".rstrip()
            if quantity is not None:
                totals[currency] = totals.get(currency, Decimal(0)) + quantity * price
        lines.append(line)
    if totals:
        lines.append("Total: " + ", ".join(f"{_plain(v)} {c}".rstrip() for c, v in totals.items()))
    return "\n".join(lines) or "[order]"


_AMOUNT_LIMIT = Decimal(10) ** 15  # larger than any real price or quantity


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None
    return amount if amount.is_finite() and abs(amount) < _AMOUNT_LIMIT else None


def _plain(amount: Decimal) -> str:
    return f"{amount:f}"


def unsupported_text(body: Mapping[str, Any] | None, errors: Any) -> tuple[str, list[tuple[str, str]]]:
    """What an agent reads for a message Cloud API did not pass on, and the facts kept with it.

    Meta sends ``unsupported.type`` (what the customer sent, e.g. ``poll_update``) and an ``errors``
    entry (131051 "Message type unknown", or 131060 "This message is currently unavailable").
    """
    what = text_or_none(body.get("type")) if body else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    title = text_or_none(first.get("title")) or text_or_none(first.get("message"))
    facts = [("unsupported_type", what)] if what else []
    if isinstance(first.get("code"), int | str) and not isinstance(first.get("code"), bool):
        facts.append(("error_code", str(first["code"])))
    described = (f" ({what})" if what else "") + (f": {title}" if title else "")
    return f"[A message WhatsApp did not pass on{described}]", facts


def contacts_text(contacts: Any) -> str | None:
    """A shared contact card, as an agent would read it: "Jane Doe: +1 555 0100"."""
    if not isinstance(contacts, list):
        return None
    lines = []
    for card in contacts:
        if not isinstance(card, dict):
            continue
        name = text_or_none(card["name"].get("formatted_name")) if isinstance(card.get("name"), dict) else None
        listed = card["phones"] if isinstance(card.get("phones"), list) else []
        phones = [phone for p in listed if isinstance(p, dict) and (phone := text_or_none(p.get("phone")))]
        lines.append(": ".join(x for x in (name, ", ".join(phones)) if x))
    return "\n".join(line for line in lines if line) or None
