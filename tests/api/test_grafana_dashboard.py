"""deploy/grafana/channelhub.json queries only metrics that a hub's /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Api

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "channelhub.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _queried(dashboard: dict) -> set[str]:  # type: ignore[type-arg]
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in re.findall(r"\bchannelhub_[a-z0-9_]+", expr)}


async def test_every_metric_the_dashboard_queries_is_scraped(api: Api) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    response = await api.client.get("/metrics")  # loopback, no token configured
    assert response.status == 200
    exposed = {
        family.name + suffix
        for family in text_string_to_metric_families(await response.text())
        for suffix in _SUFFIXES.get(family.type, ("",))
    }
    queried = _queried(dashboard)
    assert len(queried) >= 12
    assert sorted(queried - exposed) == []
    assert all(panel["targets"] for panel in dashboard["panels"])
