"""Smart replies, as Gmail's Smart Reply does it (Kannan et al., KDD 2016): a triggering
model first decides whether a short reply is worth suggesting at all, then up to three
responses come from a fixed, curated response set, kept diverse (a yes, a no, a later)."""

from __future__ import annotations

from dataclasses import dataclass

# The curated response set: per intent, options of different polarity (positive first).
RESPONSES: dict[str, tuple[str, ...]] = {
    "schedule": ("That time works for me.", "Can we do later in the week?", "I can't then, sorry."),
    "question": (
        "Yes, that's right.",
        "Let me check and get back to you.",
        "No, I don't think so.",
    ),
    "thanks": ("You're welcome!", "Happy to help.", "Anytime!"),
    "request": ("Sure, I'll send it over today.", "I'll take a look.", "Sorry, I can't this week."),
    "confirm": ("Yes, I'll be there.", "Looking forward to it!", "Sorry, I can't make it."),
    "news": ("Congratulations!", "That's great news!", "Thanks for letting me know."),
}
# Generic English cues of each speech act (not taken from the dataset's templates): they add
# to the classifier's intent probabilities, which alone generalise poorly to unseen phrasing.
CUES: dict[str, tuple[str, ...]] = {
    "thanks": ("thank", "appreciate", "grateful", "owe you"),
    "confirm": (
        "can you make it",
        "still on",
        "rsvp",
        "will you join",
        "please confirm",
        "are you coming",
        "are you joining",
        "let me know if you can",
        "see you there",
    ),
    "schedule": (
        "are you free",
        "free on",
        "free for",
        "good time",
        "reschedule",
        "slot",
        "meet",
        "a call",
        "available",
        "calendar",
        "coffee",
    ),
    "request": (
        "could you",
        "can you send",
        "please send",
        "can you review",
        "need your",
        "can you cover",
        "would you mind",
        "please review",
        "when you have a moment",
    ),
    "news": ("news", "engaged", "accepted", "announce", "excited to share", "photos"),
    "question": ("?", "do you know", "did you", "do you think", "wondering", "whether"),
}
CUE_WEIGHT = 0.35
TRIGGER_THRESHOLD = 0.5
NO_REPLY_SENDERS = ("noreply", "no-reply", "donotreply", "notification", "alerts@", "news@")
REPLYABLE = {"primary", "finance"}


def intent_of(text: str, probabilities: dict[str, float]) -> str:
    """The classifier's intent probabilities plus cue evidence; `none` when nothing fits."""
    lowered = text.lower()
    scores = dict(probabilities)
    for intent, cues in CUES.items():
        hits = sum(1 for cue in cues if cue in lowered)
        scores[intent] = scores.get(intent, 0.0) + CUE_WEIGHT * min(hits, 3)
    return max(scores, key=lambda k: scores[k]) if scores else "none"


@dataclass(frozen=True)
class Suggestion:
    suggest: bool
    replies: list[str]


def suggest(
    *, category: str, intent: str, reply_probability: float, from_email: str, sent_by_me: bool
) -> Suggestion:
    """The trigger: a person's mail (not a notification, not our own), a reply-worthy model
    score, and a known intent; then three diverse responses of that intent."""
    sender = from_email.lower()
    if (
        sent_by_me
        or category not in REPLYABLE
        or reply_probability < TRIGGER_THRESHOLD
        or any(marker in sender for marker in NO_REPLY_SENDERS)
        or intent not in RESPONSES
    ):
        return Suggestion(False, [])
    return Suggestion(True, list(RESPONSES[intent][:3]))
