"""The offline text model: TF-IDF features, linear heads for triage and smart-reply, and LSA
embeddings for semantic search. Pure numpy at run time (no torch, no download).

The artifact `data/model.npz` is built by `scripts/email_train.py` (scikit-learn, a dev
dependency) from `data/labeled.jsonl`; this module only reads it. Features are computed here
and by the trainer through the same `features` function, so training and serving agree
(tests/email/test_textmodel.py checks them against scikit-learn's own transform).
"""

from __future__ import annotations

import io
import itertools
import math
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np
import numpy.typing as npt

from pull.email import replies

CATEGORIES = (
    "primary",
    "social",
    "promotions",
    "updates",
    "forums",
    "finance",
    "trading alerts",
)
PRIORITIES = ("high", "normal", "low")
# Mail not written to the reader as a person: always low priority (docs/email.md, "Priority").
BULK = frozenset({"promotions", "social", "forums"})
EMBEDDING_DIM = 128

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[$%#@>?!]")
_NUMBER = re.compile(r"^[0-9]+$")

FloatArray = npt.NDArray[np.float32]


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        out.append("<num>" if _NUMBER.match(tok) else tok)
    return out


def features(subject: str, body: str, sender: str) -> list[str]:
    """Unigrams and bigrams of subject and body (subject words marked), plus the sender's
    domain: what a classical mail classifier looks at."""
    feats: list[str] = []
    subj = _tokens(subject)
    feats.extend(f"s:{t}" for t in subj)
    words = subj + _tokens(body[:20_000])
    feats.extend(words)
    feats.extend(f"{a} {b}" for a, b in itertools.pairwise(words))
    domain = sender.rpartition("@")[2].lower()
    if domain:
        feats.append(f"d:{domain}")
    return feats


def question_features(subject: str, body: str) -> FloatArray:
    """Does the subject, does the body ask something (a '?')? A person asking is what makes
    their mail high priority (docs/email.md, "Priority"). The '?' token is also in the TF-IDF,
    but there it is one of hundreds of l2-normalised terms; appended as two unnormalised inputs
    of the attention head (scaled by a weight chosen by cross-validation) it keeps its force in
    long messages."""
    return np.array([float("?" in subject), float("?" in body[:20_000])], dtype=np.float32)


@dataclass(frozen=True)
class Head:
    classes: tuple[str, ...]
    weights: FloatArray  # vocabulary x classes
    bias: FloatArray
    dense: FloatArray | None = None  # extra (unnormalised) inputs x classes

    def scores(
        self, idx: npt.NDArray[np.int64], vals: FloatArray, extra: FloatArray | None = None
    ) -> FloatArray:
        logits: FloatArray = vals @ self.weights[idx] + self.bias
        if self.dense is not None and extra is not None:
            logits = logits + extra @ self.dense
        logits = logits - logits.max()
        exp = np.exp(logits)
        out: FloatArray = exp / exp.sum()
        return out


def compose_priority(category: str, p_attention: float, threshold: float) -> str:
    """Priority as defined (scripts/email_dataset.py, `priority`): bulk mail is low; else high
    when someone or something is waiting on the reader (the attention head), else normal."""
    if category in BULK:
        return "low"
    return "high" if p_attention >= threshold else "normal"


@dataclass(frozen=True)
class Triage:
    category: str
    priority: str
    reply_probability: float
    intent: str
    confidence: float


class TextModel:
    def __init__(self, arrays: dict[str, Any]) -> None:
        vocab = [str(v) for v in arrays["vocab"]]
        self.vocab = {term: i for i, term in enumerate(vocab)}
        self.idf: FloatArray = arrays["idf"].astype(np.float32)
        self.components: FloatArray = arrays["lsa"].astype(np.float32)  # vocabulary x dim
        self.heads: dict[str, Head] = {}
        for name in ("category", "attention", "reply", "intent"):
            self.heads[name] = Head(
                classes=tuple(str(c) for c in arrays[f"{name}_classes"]),
                weights=arrays[f"{name}_w"].astype(np.float32),
                bias=arrays[f"{name}_b"].astype(np.float32),
                dense=arrays[f"{name}_qw"].astype(np.float32) if f"{name}_qw" in arrays else None,
            )
        self.attention_threshold = float(arrays["attention_threshold"][0])

    def vectorize(
        self, subject: str, body: str, sender: str
    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Sparse TF-IDF (sublinear tf, l2-normalised), as scikit-learn computes it."""
        counts: dict[int, int] = {}
        for f in features(subject, body, sender):
            i = self.vocab.get(f)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(
            (1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts)
        )
        vals = tf * self.idf[idx]
        norm = float(np.linalg.norm(vals))
        return idx, (vals / norm if norm else vals).astype(np.float32)

    def _predict(
        self, name: str, idx: npt.NDArray[np.int64], vals: FloatArray
    ) -> tuple[str, float]:
        head = self.heads[name]
        p = head.scores(idx, vals)
        k = int(np.argmax(p))
        return head.classes[k], float(p[k])

    def triage(self, *, subject: str, body: str, sender: str) -> Triage:
        idx, vals = self.vectorize(subject, body, sender)
        category, confidence = self._predict("category", idx, vals)
        attention = self.heads["attention"]
        asks = question_features(subject, body)
        p_att = float(attention.scores(idx, vals, asks)[attention.classes.index("True")])
        priority = compose_priority(category, p_att, self.attention_threshold)
        reply = self.heads["reply"]
        p = reply.scores(idx, vals)
        reply_p = float(p[reply.classes.index("True")])
        head = self.heads["intent"]
        probs = head.scores(idx, vals)
        intents = {c: float(p) for c, p in zip(head.classes, probs, strict=True) if c != "none"}
        intent = replies.intent_of(f"{subject}\n{body}", intents) if reply_p >= 0.5 else "none"
        return Triage(category, priority, reply_p, intent, confidence)

    def embed_vector(self, idx: npt.NDArray[np.int64], vals: FloatArray) -> FloatArray:
        vec: FloatArray = (
            vals @ self.components[idx]
            if len(idx)
            else np.zeros(self.components.shape[1], dtype=np.float32)
        )
        norm = float(np.linalg.norm(vec))
        return (vec / norm).astype(np.float32) if norm else vec.astype(np.float32)

    def embed(self, *, subject: str, body: str, sender: str = "") -> FloatArray:
        return self.embed_vector(*self.vectorize(subject, body, sender))


def load_arrays(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@lru_cache(maxsize=1)
def model() -> TextModel:
    """The shipped model, loaded once per process."""
    data = files("pull.email").joinpath("data/model.npz").read_bytes()
    return TextModel(load_arrays(data))


def save_arrays(arrays: dict[str, Any]) -> bytes:
    """A byte-for-byte reproducible .npz (fixed zip timestamps and member order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def vector_literal(vec: FloatArray) -> str:
    """pgvector's text form, `[0.1,0.2,...]`."""
    return "[" + ",".join(f"{x:.6f}" for x in vec.tolist()) + "]"
