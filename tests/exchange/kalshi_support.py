"""Helpers for the Kalshi-compatible API tests: RSA keys registered through our API-key
endpoint, and requests signed the way Kalshi's own clients sign them."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pull.exchange import service
from pull.exchange.schemas import EventCreate, MarketCreate, SeriesCreate

PREFIX = "/trade-api/v2"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def kalshi_headers(
    key: rsa.RSAPrivateKey, key_id: str, method: str, path: str, timestamp_ms: int | None = None
) -> dict[str, str]:
    """As in Kalshi's starter code: sign timestamp + METHOD + path (no query), RSA-PSS/SHA-256."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    message = (ts + method.upper() + path.split("?")[0]).encode()
    signature = key.sign(
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-SIGNATURE": base64.b64encode(signature).decode(),
        "KALSHI-ACCESS-TIMESTAMP": ts,
    }


@dataclass
class Bot:
    """A user holding a registered API key, able to sign its own requests."""

    user_id: uuid.UUID
    key_id: str
    key: rsa.RSAPrivateKey
    bearer: dict[str, str]

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        return kalshi_headers(self.key, self.key_id, method, path, timestamp_ms)

    async def request(
        self, client: httpx.AsyncClient, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        full = PREFIX + path
        headers = {**kw.pop("headers", {}), **self.headers(method, full)}
        return await client.request(method, full, headers=headers, **kw)


async def register_key(
    client: httpx.AsyncClient, bearer: dict[str, str], key: rsa.RSAPrivateKey
) -> str:
    r = await client.post(
        "/api/v1/api-keys", headers=bearer, json={"name": "bot", "public_key_pem": public_pem(key)}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key_id"])


async def make_structure(
    maker: async_sessionmaker[AsyncSession],
    series: str,
    events: dict[str, list[str]],
    *,
    close_in: dict[str, dt.timedelta] | None = None,
    open_markets: bool = True,
) -> None:
    """One series, its events and their markets (opened unless told otherwise)."""
    now = dt.datetime.now(dt.UTC)
    close_in = close_in or {}
    async with maker() as s, s.begin():
        await service.create_series(
            session=s,
            data=SeriesCreate(ticker=series, title=f"Series {series}", category="Economics"),
        )
        for event, markets in events.items():
            await service.create_event(
                session=s,
                data=EventCreate(ticker=event, series_ticker=series, title=f"Event {event}"),
            )
            for ticker in markets:
                await service.create_market(
                    session=s,
                    data=MarketCreate(
                        ticker=ticker,
                        event_ticker=event,
                        title=f"Will {ticker} happen?",
                        open_time=now - dt.timedelta(minutes=1),
                        close_time=now + close_in.get(ticker, dt.timedelta(days=30)),
                    ),
                )
                if open_markets:
                    await service.set_market_status(session=s, ticker=ticker, action="open")
