"""Reply drafting: Anthropic's SDK against a local fake of the Messages API (its wire
format), and the deterministic sandbox drafter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pull.email.providers.base import ProviderError
from pull.email.providers.llm import AnthropicDrafter, SandboxDrafter
from tests.conftest import free_port
from tests.kyc.conftest import serve

KEY = "sk-ant-test"


class FakeAnthropic:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail = False

    def app(self) -> Starlette:
        async def messages(request: Request) -> JSONResponse:
            body = await request.json()
            self.seen.append((dict(request.headers), body))
            # the SDK authenticates with x-api-key or (2.x) Authorization: Bearer <key>
            key = request.headers.get("x-api-key") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if key != KEY:
                return JSONResponse(
                    {"type": "error", "error": {"type": "authentication_error", "message": "bad"}},
                    status_code=401,
                )
            if self.fail:
                return JSONResponse(
                    {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                    status_code=529,
                )
            return JSONResponse(
                {
                    "id": "msg_01fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": "Thursday at 3pm works for me."}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 42, "output_tokens": 9},
                }
            )

        return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


@pytest.fixture
async def anthropic() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    async with serve(fake.app(), free_port()) as url:
        yield fake, url


async def test_anthropic_drafter_speaks_the_messages_api(
    anthropic: tuple[FakeAnthropic, str],
) -> None:
    fake, url = anthropic
    drafter = AnthropicDrafter(api_key=KEY, model="claude-haiku-4-5", base_url=url)
    text = await drafter.draft(
        subject="Can we meet Thursday?",
        body="Are you free at 3pm?",
        sender_name="Maya Patel",
        intent="schedule",
    )
    assert text == "Thursday at 3pm works for me."
    headers, body = fake.seen[-1]
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    assert headers["anthropic-version"]
    assert body["model"] == "claude-haiku-4-5" and body["max_tokens"] == 400
    assert body["messages"][0]["role"] == "user"
    assert "Are you free at 3pm?" in body["messages"][0]["content"]
    fake.fail = True
    with pytest.raises(ProviderError):
        await drafter.draft(subject="s", body="b", sender_name="n", intent="question")
    bad = AnthropicDrafter(api_key="wrong", model="claude-haiku-4-5", base_url=url)
    with pytest.raises(ProviderError):
        await bad.draft(subject="s", body="b", sender_name="n", intent="question")


async def test_sandbox_drafter_is_deterministic() -> None:
    d = SandboxDrafter()
    one = await d.draft(subject="s", body="b", sender_name="Maya Patel", intent="schedule")
    two = await d.draft(subject="s", body="b", sender_name="Maya Patel", intent="schedule")
    assert one == two == "Hi Maya,\n\nThat time works for me.\n\nBest,"
