"""Typed errors of the email module (mapped once by kit/errors)."""

from __future__ import annotations

from pull.kit.errors import BadRequest, Conflict, NotFound, ServiceUnavailable


class MailboxNotConnected(NotFound):
    code = "MAILBOX_NOT_CONNECTED"
    message = "No mailbox is connected"


class MessageNotFound(NotFound):
    code = "MESSAGE_NOT_FOUND"
    message = "Message not found"


class ThreadNotFound(NotFound):
    code = "THREAD_NOT_FOUND"
    message = "Thread not found"


class InvalidOAuthState(BadRequest):
    code = "INVALID_OAUTH_STATE"
    message = "The connect link expired or was already used; start again"


class OAuthFailed(BadRequest):
    code = "OAUTH_FAILED"
    message = "The mail provider refused the authorization code"


class GrantRevokedError(Conflict):
    code = "MAILBOX_REVOKED"
    message = "Access to this mailbox was revoked; connect it again"


class InvalidCategory(BadRequest):
    code = "INVALID_CATEGORY"
    message = "Unknown category"


class ProviderUnavailable(ServiceUnavailable):
    code = "MAIL_PROVIDER_UNAVAILABLE"
    message = "The mail provider did not answer; try again"
