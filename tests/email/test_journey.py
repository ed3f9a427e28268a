"""Connect -> sync -> triage -> search -> reply over HTTP against real `pull api` and
`pull worker` processes with the Nylas sandbox: backfill in pages, signed webhooks (one
redelivered, one truncated), forged webhooks refused, caller scoping, revocation, deletion."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx

from pull.email.providers import wire
from pull.email.providers.sandbox import mailbox
from tests.email.conftest import EmailStack, eventually, register, sandbox_grant_id, signed

TOTAL = len(mailbox())  # 320: 308 backfilled, 12 delivered by webhook after connecting


def _connect(
    c: httpx.Client, headers: dict[str, str], hint: str | None = None
) -> tuple[str, dict[str, Any]]:
    r = c.post("/api/v1/email/connect", json={"login_hint": hint}, headers=headers)
    assert r.status_code == 200, r.text
    auth_url = r.json()["auth_url"]
    assert "/v3/connect/auth?" in auth_url and "state=" in auth_url
    consent = httpx.get(auth_url, follow_redirects=False, timeout=30)
    assert consent.status_code == 302, consent.text
    location = consent.headers["location"]
    code = parse_qs(urlparse(location).query)["code"][0]
    cb = httpx.get(location, timeout=30)
    assert cb.status_code == 200, cb.text
    return code, cb.json()


def _all_messages(c: httpx.Client, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        q = {**params, "limit": "200", **({"cursor": cursor} if cursor else {})}
        r = c.get("/api/v1/email/messages", params=q, headers=headers)
        assert r.status_code == 200, r.text
        items.extend(r.json()["items"])
        cursor = r.json()["cursor"]
        if not cursor:
            return items


def _iso_day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _db(stack: EmailStack, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.database_url.replace("+asyncpg", ""))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_connect_sync_triage_search_reply(email_stack: EmailStack) -> None:
    with email_stack.client() as c:
        alice, bob = register(c), register(c)
        code, box = _connect(c, alice)
        assert box["status"] == "active" and box["provider"] == "sandbox"
        grant_id = sandbox_grant_id(code)

        # backfill (pages of 200) and the webhooks: every message once, the duplicate ignored
        box = eventually(
            lambda: c.get("/api/v1/email/mailbox", headers=alice).json(),
            lambda b: b["sync_state"] == "live" and b["messages"] >= TOTAL,
        )
        assert box["messages"] == TOTAL
        items = _all_messages(c, alice)
        assert len(items) == TOTAL and len({m["id"] for m in items}) == TOTAL
        assert [m["received_at"] for m in items] == sorted(
            (m["received_at"] for m in items), reverse=True
        )

        # the >1 MB message came as message.created.truncated; the workflow fetched its body
        large = next(r for r in mailbox() if r["large"])
        big = next(
            m
            for m in items
            if m["subject"] == large["subject"]
            and m["from_email"] == large["from_email"]
            and m["received_at"].startswith(_iso_day(large["date"]))
        )
        detail = eventually(
            lambda: c.get(f"/api/v1/email/messages/{big['id']}", headers=alice).json(),
            lambda d: d["body"] is not None,
        )
        assert len(detail["body"]) > 1_000_000

        # triage: every message has a category; the filter and its cursor agree with the list
        truth = {(r["subject"], r["from_email"]): r["category"] for r in mailbox()}
        hits = sum(truth.get((m["subject"], m["from_email"])) == m["category"] for m in items)
        assert hits / len(items) >= 0.85, hits
        # and a priority: bulk mail is low, the rest high or normal (docs/email.md, "Priority")
        assert {m["priority"] for m in items} == {"high", "normal", "low"}
        assert all(
            (m["priority"] == "low") == (m["category"] in {"promotions", "social", "forums"})
            for m in items
        )
        alerts = _all_messages(c, alice, category="trading alerts")
        assert alerts and all(m["category"] == "trading alerts" for m in alerts)
        by_cat = sum(
            len(_all_messages(c, alice, category=k)) for k in {m["category"] for m in items}
        )
        assert by_cat == TOTAL
        bad = c.get("/api/v1/email/messages", params={"category": "spam"}, headers=alice)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_CATEGORY"

        # webhooks: challenge echoed, a redelivery harmless, forged and unsigned ones 401
        assert c.get("/webhooks/nylas", params={"challenge": "abc123"}).text == "abc123"
        obj = {
            "id": "msg_webhook_test",
            "grant_id": grant_id,
            "thread_id": "thr_webhook_test",
            "subject": "Margin call on your account",
            "from": [{"name": "PULL Alerts", "email": "alerts@pull.app"}],
            "to": [{"email": "alex@sandbox.pull.test"}],
            "date": 1795000000,
            "unread": True,
            "folders": ["INBOX"],
            "body": "<div>Deposit $500.00 or close positions by Friday to avoid liquidation.</div>",
        }
        event = wire.envelope(
            "message.created", obj, application_id="t", event_id=secrets.token_hex(8)
        )
        body, headers = signed(event)
        first = c.post("/webhooks/nylas", content=body, headers=headers)
        again = c.post("/webhooks/nylas", content=body, headers=headers)
        assert first.json() == {"received": True, "duplicate": False}
        assert again.json() == {"received": True, "duplicate": True}
        forged_body, forged_headers = signed(event, secret="not-the-secret")
        forged = c.post("/webhooks/nylas", content=forged_body, headers=forged_headers)
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "INVALID_SIGNATURE"
        tampered = c.post(
            "/webhooks/nylas", content=body.replace(b"500.00", b"5.00"), headers=headers
        )
        assert tampered.status_code == 401
        unsigned = c.post(
            "/webhooks/nylas", content=body, headers={"Content-Type": "application/json"}
        )
        assert unsigned.status_code == 401
        # the same message under a new notification id (Nylas' retries differ): still one row
        event2 = {**event, "id": secrets.token_hex(8)}
        b2, h2 = signed(event2)
        assert c.post("/webhooks/nylas", content=b2, headers=h2).json()["duplicate"] is False
        assert c.get("/api/v1/email/mailbox", headers=alice).json()["messages"] == TOTAL + 1

        # search: hybrid, ranked, the caller's mail only
        r = c.get("/api/v1/email/search", params={"q": "margin call liquidation"}, headers=alice)
        assert r.status_code == 200, r.text
        top = r.json()["items"]
        assert top and "margin call" in top[0]["message"]["subject"].lower()
        assert top[0]["message"]["priority"] == "high"  # a risk to the reader's money, now
        assert top[0]["semantic_rank"] is not None and top[0]["keyword_rank"] is not None
        sem = c.get("/api/v1/email/search", params={"q": "discount sale"}, headers=alice).json()
        assert sum(h["message"]["category"] == "promotions" for h in sem["items"][:10]) >= 7
        assert c.get("/api/v1/email/search", params={"q": "margin call"}, headers=bob).json() == {
            "items": [],
            "cursor": None,
        }
        msg = top[0]["message"]
        assert c.get(f"/api/v1/email/messages/{msg['id']}", headers=bob).status_code == 404
        assert c.get(f"/api/v1/email/threads/{msg['thread_id']}", headers=bob).status_code == 404

        # smart replies: a person's question gets three, a promotion none
        ask = next(
            m
            for m in items
            if m["category"] == "primary" and ("Dinner" in m["subject"] or "1:1" in m["subject"])
        )
        assert ask["priority"] == "high"  # a person asking the reader something
        s = c.get(f"/api/v1/email/messages/{ask['id']}/suggestions", headers=alice).json()
        assert s["suggest"] is True and len(s["replies"]) == 3, s
        promo = next(m for m in items if m["category"] == "promotions")
        s2 = c.get(f"/api/v1/email/messages/{promo['id']}/suggestions", headers=alice).json()
        assert s2 == {**s2, "suggest": False, "replies": []}

        # an LLM-drafted reply (the deterministic sandbox drafter without ANTHROPIC_API_KEY)
        d = c.post(f"/api/v1/email/messages/{ask['id']}/draft", headers=alice)
        assert d.status_code == 200 and d.json()["provider"] == "sandbox", d.text
        assert (
            d.json()["draft"].startswith("Hi ")
            and d.json()
            == c.post(f"/api/v1/email/messages/{ask['id']}/draft", headers=alice).json()
        )

        # reply through Nylas: the sent copy joins the thread
        sent = c.post(
            f"/api/v1/email/messages/{ask['id']}/reply",
            json={"body": s["replies"][0]},
            headers=alice,
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["folders"] == ["SENT"] and sent.json()["thread_id"] == ask["thread_id"]
        thread = c.get(f"/api/v1/email/threads/{ask['thread_id']}", headers=alice).json()
        assert {m["id"] for m in thread["messages"]} >= {ask["id"], sent.json()["id"]}

        # mark read and archive, written back to Nylas (which notifies message.updated)
        unread = next(m for m in items if m["unread"])
        read = c.patch(
            f"/api/v1/email/messages/{unread['id']}", json={"unread": False}, headers=alice
        )
        assert read.status_code == 200 and read.json()["unread"] is False
        arch = c.patch(
            f"/api/v1/email/messages/{unread['id']}", json={"archived": True}, headers=alice
        )
        assert arch.json()["archived"] is True and "INBOX" not in arch.json()["folders"]
        later = eventually(
            lambda: c.get(f"/api/v1/email/messages/{unread['id']}", headers=alice).json(),
            lambda d: d["unread"] is False and d["archived"] is True,
            timeout=20,
        )
        assert later["unread"] is False

        # privacy: bodies are Fernet tokens at rest and appear in no process log
        rows = _db(
            email_stack,
            "SELECT body_enc, snippet_enc FROM email_messages WHERE body_enc IS NOT NULL",
        )
        assert rows and all(r["body_enc"].startswith("gAAAAA") for r in rows)
        assert all("liquidation" not in r["body_enc"] for r in rows)
        grants = _db(email_stack, "SELECT grant_enc FROM email_grants")
        assert all(grant_id not in g["grant_enc"] for g in grants)
        for log in email_stack.logs:
            text = log.read_text(errors="replace")
            assert "avoid liquidation" not in text and "quarterly report appendix" not in text

        # disconnect deletes everything of the grant
        gone = c.delete("/api/v1/email/mailbox", headers=alice)
        assert gone.status_code == 200 and gone.json()["messages_deleted"] == TOTAL + 2
        assert c.get("/api/v1/email/mailbox", headers=alice).status_code == 404
        assert _all_messages(c, alice) == []
        left = _db(email_stack, "SELECT count(*) AS n FROM email_messages")
        assert left[0]["n"] == 0


def test_revoked_grant_stops_the_sync(email_stack: EmailStack) -> None:
    with email_stack.client() as c:
        carol = register(c)
        _, box = _connect(c, carol, hint="revoked@example.com")
        assert box["status"] == "active"
        box = eventually(
            lambda: c.get("/api/v1/email/mailbox", headers=carol).json(),
            lambda b: b["status"] == "revoked",
        )
        assert box["sync_state"] == "stopped" and box["messages"] == 0
        m = c.get("/api/v1/email/messages", headers=carol).json()
        assert m["items"] == []

        # a grant.deleted notification stops a live mailbox too
        dave = register(c)
        code, _ = _connect(c, dave)
        eventually(
            lambda: c.get("/api/v1/email/mailbox", headers=dave).json(),
            lambda b: b["sync_state"] == "live",
        )
        event = wire.envelope(
            "grant.deleted",
            {"grant_id": sandbox_grant_id(code), "code": 25012, "provider": "google"},
            application_id="t",
        )
        body, headers = signed(event)
        assert c.post("/webhooks/nylas", content=body, headers=headers).status_code == 200
        box = c.get("/api/v1/email/mailbox", headers=dave).json()
        assert box["status"] == "revoked"
        reply_to = c.get("/api/v1/email/messages", headers=dave).json()["items"][0]
        r = c.post(
            f"/api/v1/email/messages/{reply_to['id']}/reply", json={"body": "hi"}, headers=dave
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "MAILBOX_REVOKED"
        assert json.loads(r.text)["error"]["request_id"]
