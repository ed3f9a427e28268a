"""The Grafana analytics dashboard: every panel's SQL runs on the ClickHouse schema (chDB),
with the ClickHouse plugin's macros expanded as the plugin expands them, and returns data."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

from pull.analytics import warehouse
from pull.analytics.client import Warehouse
from pull.analytics.normalize import from_outbox

DASHBOARD = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "monitoring"
    / "grafana"
    / "dashboards"
    / "analytics.json"
)


def _expand(sql: str) -> str:
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        r"\1 >= now() - INTERVAL 30 DAY AND \1 <= now() + INTERVAL 1 DAY",
        sql,
    )
    sql = sql.replace("$__fromTime", "(now() - INTERVAL 30 DAY)")
    sql = sql.replace("$__toTime", "(now() + INTERVAL 1 DAY)")
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(\1, INTERVAL 3600 second)", sql)
    assert "$" not in sql, sql
    return sql


def test_every_panel_query_runs(wh: Warehouse) -> None:
    now = dt.datetime.now(dt.UTC)
    user, maker = str(uuid.uuid4()), str(uuid.uuid4())
    rows = []
    for i, (topic, payload) in enumerate(
        [
            ("identity.user_registered", {"user_id": user}),
            ("identity.email_verified", {"user_id": user}),
            ("identity.phone_verified", {"user_id": user}),
            ("kyc.tier_changed", {"user_id": user, "from": "none", "to": "basic"}),
            ("funding.deposit_settled", {"user_id": user, "deposit_id": "d1", "amount": 5000}),
            (
                "exchange.trade",
                {
                    "ticker": "KX-A",
                    "user_id": user,
                    "side": "yes",
                    "action": "buy",
                    "fills": [
                        {
                            "count": 3,
                            "yes_price": 40,
                            "maker_user_id": maker,
                            "taker_fee": 6,
                            "maker_fee": 0,
                        }
                    ],
                },
            ),
        ]
    ):
        rows += from_outbox(
            outbox_id=i + 1, topic=topic, payload=payload, created_at=now + dt.timedelta(seconds=i)
        )
    warehouse.insert_rows(wh, rows, now)
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "pull-analytics"
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
        for target in panel["targets"]:
            sql = _expand(target["rawSql"]).replace("pull_analytics.", f"{wh.database}.")
            result = wh.rows(sql)
            assert result, panel["title"]
    funnel = next(p for p in dash["panels"] if p["title"].startswith("Funnel"))
    assert wh.rows(_expand(funnel["targets"][0]["rawSql"])) == [(6, 1)]
