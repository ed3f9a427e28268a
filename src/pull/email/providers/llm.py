"""Reply drafting by an LLM: Anthropic's Messages API (the `anthropic` SDK) when
ANTHROPIC_API_KEY is set, else a deterministic sandbox drafter built on the response set.

Only the message being answered is sent (subject, sender's name, plain-text body cut to 8,000
characters); nothing is stored by us and nothing is logged.
"""

from __future__ import annotations

from typing import Protocol

from anthropic import APIError, AsyncAnthropic

from pull.config import Settings
from pull.email.providers.base import ProviderError
from pull.email.replies import RESPONSES

SYSTEM = (
    "You draft short, polite email replies for the recipient of the message. Answer in the "
    "message's language, in at most four sentences, without a subject line, signed with no "
    "name. Never invent facts, dates or commitments that the message does not contain."
)


class ReplyDrafter(Protocol):
    name: str

    async def draft(self, *, subject: str, body: str, sender_name: str, intent: str) -> str: ...


class SandboxDrafter:
    """Deterministic: the same message always gets the same draft."""

    name = "sandbox"

    async def draft(self, *, subject: str, body: str, sender_name: str, intent: str) -> str:
        first = sender_name.split()[0] if sender_name.strip() else "there"
        line = RESPONSES.get(intent, ("Thanks for your message.",))[0]
        return f"Hi {first},\n\n{line}\n\nBest,"


class AnthropicDrafter:
    name = "anthropic"

    def __init__(self, *, api_key: str, model: str, base_url: str | None) -> None:
        self.client = AsyncAnthropic(api_key=api_key, base_url=base_url or None, max_retries=2)
        self.model = model

    async def draft(self, *, subject: str, body: str, sender_name: str, intent: str) -> str:
        prompt = f"From: {sender_name}\nSubject: {subject}\n\n{body[:8000]}\n\nWrite the reply."
        try:
            msg = await self.client.messages.create(
                model=self.model,
                max_tokens=400,
                system=SYSTEM,
                messages=[{"role": "user", "content": prompt}],
            )
        except APIError as exc:
            raise ProviderError(f"anthropic {type(exc).__name__}") from exc
        text = "".join(getattr(block, "text", "") for block in msg.content).strip()
        if not text:
            raise ProviderError("anthropic returned no text")
        return text


def make_drafter(settings: Settings) -> ReplyDrafter:
    if settings.anthropic_api_key:
        return AnthropicDrafter(
            api_key=settings.anthropic_api_key,
            model=settings.anthropic_model,
            base_url=settings.anthropic_base_url or None,
        )
    return SandboxDrafter()
