"""Typed errors of the messaging module."""

from __future__ import annotations

from pull.kit.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable


class MessagingUnavailable(ServiceUnavailable):
    code = "MESSAGING_UNAVAILABLE"
    message = "Messaging is unavailable right now"


class RoomNotFound(NotFound):
    code = "ROOM_NOT_FOUND"
    message = "Room not found"


class NotAMember(Forbidden):
    code = "NOT_A_MEMBER"
    message = "You are not in this room"


class NotAnOwner(Forbidden):
    code = "NOT_AN_OWNER"
    message = "Only owners of this asset can join its room"


class ReadOnlyRoom(Forbidden):
    code = "READ_ONLY_ROOM"
    message = "Only PULL posts in this room"


class Muted(Forbidden):
    code = "MUTED"
    message = "You are muted in this room"


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"
    message = "User not found"


class CannotMessageSelf(BadRequest):
    code = "CANNOT_MESSAGE_SELF"
    message = "Pick someone other than yourself"


class MarketNotFound(NotFound):
    code = "MARKET_NOT_FOUND"
    message = "Market not found"


class ReportNotFound(NotFound):
    code = "REPORT_NOT_FOUND"
    message = "Report not found"


class AlreadyReported(Conflict):
    code = "ALREADY_REPORTED"
    message = "You already reported this message"


class EventNotFound(NotFound):
    code = "EVENT_NOT_FOUND"
    message = "Message not found in this room"
