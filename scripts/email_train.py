"""Train the email text model and write src/pull/email/data/model.npz + metrics.json.

    uv run python scripts/email_train.py          # deterministic: same data, same bytes

TF-IDF (unigrams + bigrams + sender domain, sublinear tf) feeding four logistic regressions
(category, attention, reply-worthy, reply intent), trained on the `train` split of
data/labeled.jsonl and scored on the held-out `test` split (templates never seen in training);
plus a 128-dimension LSA (truncated SVD of the same TF-IDF) for semantic search. scikit-learn
is needed only here; serving is numpy (pull.email.textmodel).

Priority is served as its definition reads (scripts/email_dataset.py, `priority`): low for the
bulk categories, else high when the attention head (someone or something is waiting on the
reader) passes its threshold, else normal. The attention head is trained on the non-bulk
training rows only, on the TF-IDF plus two "asks a question" inputs (a '?' in the subject, in
the body; textmodel.question_features) scaled by a weight. The weight (0 = not used), the
regularization C and the threshold are the triple with the best macro-F1 of the composed
priority in a cross-validation on the training split: 4 folds, each a quarter of each
category's templates (as the held-out split is drawn), repeated over 5 shuffles, the whole
pipeline refitted per fold. The test split is never looked at before the final score. A direct
3-class priority regression is scored for comparison (`priority_direct`).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score

from pull.email.textmodel import (
    BULK,
    EMBEDDING_DIM,
    compose_priority,
    features,
    question_features,
    save_arrays,
)

DATA = Path(__file__).resolve().parents[1] / "src" / "pull" / "email" / "data"
HEADS = ("category", "reply", "intent")
THRESHOLDS = [round(0.2 + 0.05 * i, 2) for i in range(13)]  # 0.20 .. 0.80
STRENGTHS = [1.0, 4.0, 20.0]  # the attention head's inverse regularization C, chosen by CV
QUESTION_WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0]  # scale of its two '?' inputs (0: not used), by CV
CV_FOLDS, CV_SHUFFLES = 4, 5


def rows() -> list[dict[str, Any]]:
    with (DATA / "labeled.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


@cache
def _features(subject: str, body: str, sender: str) -> tuple[str, ...]:
    return tuple(features(subject, body, sender))  # cached: cross-validation refits 20 times


def _analyzer(row: dict[str, Any]) -> list[str]:
    return list(_features(str(row["subject"]), str(row["body"]), str(row["from_email"])))


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=_analyzer, sublinear_tf=True, min_df=2, max_features=12_000, dtype=np.float32
    )


def train(data: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    train_rows = [r for r in data if r["split"] == "train"]
    test_rows = [r for r in data if r["split"] == "test"]
    vec = _vectorizer()
    x_train = vec.fit_transform(train_rows)
    x_test = vec.transform(test_rows)
    vocab = sorted(vec.vocabulary_, key=lambda t: vec.vocabulary_[t])
    arrays: dict[str, Any] = {
        "vocab": np.array(vocab),
        "idf": vec.idf_.astype(np.float32),
    }
    metrics: dict[str, Any] = {
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "vocabulary": len(vocab),
    }
    predicted: dict[str, list[str]] = {}
    for head in HEADS:
        y_train = [str(r[head]) for r in train_rows]
        y_test = [str(r[head]) for r in test_rows]
        clf = LogisticRegression(C=20.0, max_iter=3000, solver="lbfgs")
        clf.fit(x_train, y_train)
        classes = [str(c) for c in clf.classes_]
        coef, bias = clf.coef_, clf.intercept_
        if len(classes) == 2:  # binary: softmax over [0, w.x + b] equals the sigmoid
            coef = np.vstack([np.zeros_like(coef), coef])
            bias = np.array([0.0, bias[0]])
        arrays[f"{head}_classes"] = np.array(classes)
        arrays[f"{head}_w"] = coef.T.astype(np.float32)
        arrays[f"{head}_b"] = bias.astype(np.float32)
        pred = clf.predict(x_test)
        predicted[head] = [str(c) for c in pred]
        metrics[head] = {
            "macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4),
            "report": classification_report(y_test, pred, output_dict=True, zero_division=0),
        }
    _attention(arrays, metrics, x_train, x_test, train_rows, test_rows, predicted["category"])
    svd = TruncatedSVD(n_components=EMBEDDING_DIM, algorithm="randomized", random_state=0)
    svd.fit(vec.transform(data))
    arrays["lsa"] = svd.components_.T.astype(np.float16)
    metrics["lsa_explained_variance"] = round(float(svd.explained_variance_ratio_.sum()), 4)
    return arrays, metrics


def _fit(x: Any, y: list[str], c: float = 20.0) -> LogisticRegression:
    clf = LogisticRegression(C=c, max_iter=3000, solver="lbfgs")
    clf.fit(x, y)
    return clf


def _composed(categories: list[str], p_attention: Any, threshold: float) -> list[str]:
    return [
        compose_priority(c, float(p), threshold)
        for c, p in zip(categories, p_attention, strict=True)
    ]


def _with_questions(x: Any, rows: list[dict[str, Any]], weight: float) -> Any:
    """The attention head's input: the TF-IDF row, then `weight` x the two question inputs
    (outside the l2 normalisation, as served: pull.email.textmodel.question_features)."""
    q = np.array([question_features(str(r["subject"]), str(r["body"])) for r in rows])
    return sp.hstack([x, sp.csr_matrix(weight * q)], format="csr")


def _p_true(clf: LogisticRegression, x: Any) -> Any:
    return clf.predict_proba(x)[:, list(clf.classes_).index("True")]


def _cv_folds(train_rows: list[dict[str, Any]], seed: int) -> Any:
    """Fold of each row: each fold holds a quarter of each category's templates, drawn as the
    held-out split is (scripts/email_dataset.py), so a fold's phrasings are unseen."""
    rng = random.Random(seed)
    by_cat: dict[str, list[int]] = {}
    for r in train_rows:
        by_cat.setdefault(str(r["category"]), [])
        if int(r["template"]) not in by_cat[str(r["category"])]:
            by_cat[str(r["category"])].append(int(r["template"]))
    fold_of: dict[int, int] = {}
    for cat in sorted(by_cat):
        ids = sorted(by_cat[cat])
        rng.shuffle(ids)
        fold_of.update((t, j % CV_FOLDS) for j, t in enumerate(ids))
    return np.array([fold_of[int(r["template"])] for r in train_rows])


def _cross_validate(train_rows: list[dict[str, Any]]) -> dict[tuple[float, float, float], float]:
    """Macro-F1 of priority as served, for each (question weight, C, threshold): out-of-fold
    predictions of the whole pipeline (vocabulary, category head, attention head refitted on
    each fold's training part), pooled per shuffle, averaged over the shuffles."""
    truth = [str(r["priority"]) for r in train_rows]
    scores: dict[tuple[float, float, float], list[float]] = {}
    for seed in range(CV_SHUFFLES):
        fold = _cv_folds(train_rows, seed)
        cats = np.empty(len(train_rows), dtype=object)
        oof = {(w, c): np.zeros(len(train_rows)) for w in QUESTION_WEIGHTS for c in STRENGTHS}
        for f in range(CV_FOLDS):
            val_idx = np.flatnonzero(fold == f)
            fit = [r for r, k in zip(train_rows, fold, strict=True) if k != f]
            val = [train_rows[i] for i in val_idx]
            vec = _vectorizer()
            x_fit, x_val = vec.fit_transform(fit), vec.transform(val)
            cats[val_idx] = _fit(x_fit, [str(r["category"]) for r in fit]).predict(x_val)
            keep = [i for i, r in enumerate(fit) if r["category"] not in BULK]
            y_keep = [str(fit[i]["priority"] == "high") for i in keep]
            for w in QUESTION_WEIGHTS:
                x_keep = _with_questions(x_fit[keep], [fit[i] for i in keep], w)
                x_v = _with_questions(x_val, val, w)
                for c in STRENGTHS:
                    oof[w, c][val_idx] = _p_true(_fit(x_keep, y_keep, c), x_v)
        for (w, c), p in oof.items():
            for t in THRESHOLDS:
                pred = _composed([str(k) for k in cats], p, t)
                scores.setdefault((w, c, t), []).append(
                    float(f1_score(truth, pred, average="macro"))
                )
    return {k: float(np.mean(v)) for k, v in scores.items()}


def _attention(
    arrays: dict[str, Any],
    metrics: dict[str, Any],
    x_train: Any,
    x_test: Any,
    train_rows: list[dict[str, Any]],
    test_rows: list[dict[str, Any]],
    cat_pred: list[str],
) -> None:
    """The attention head (non-bulk rows: is the priority high?), its question weight, C and
    threshold by grouped cross-validation on the training split, and the held-out score of
    priority as served."""
    cv = _cross_validate(train_rows)
    # best mean; ties (to 4 places): threshold nearest 0.5, then the smaller weight and C
    weight, strength, threshold = max(
        cv, key=lambda k: (round(cv[k], 4), -abs(k[2] - 0.5), -k[0], -k[1])
    )
    keep = [i for i, r in enumerate(train_rows) if r["category"] not in BULK]
    rows_keep = [train_rows[i] for i in keep]
    y_keep = [str(r["priority"] == "high") for r in rows_keep]
    clf = _fit(_with_questions(x_train[keep], rows_keep, weight), y_keep, strength)
    coef, bias = clf.coef_, clf.intercept_  # binary: softmax over [0, w.x + b] is the sigmoid
    vocab_coef, q_coef = coef[:, : x_train.shape[1]], coef[:, x_train.shape[1] :]
    arrays["attention_classes"] = np.array([str(c) for c in clf.classes_])
    arrays["attention_w"] = np.vstack([np.zeros_like(vocab_coef), vocab_coef]).T.astype(np.float32)
    # the weight folded in: served as question_features @ attention_qw
    arrays["attention_qw"] = (weight * np.vstack([np.zeros_like(q_coef), q_coef]).T).astype(
        np.float32
    )
    arrays["attention_b"] = np.array([0.0, bias[0]]).astype(np.float32)
    arrays["attention_threshold"] = np.array([threshold], dtype=np.float32)
    # held out: the category head's prediction decides bulk, as when serving
    p_att = _p_true(clf, _with_questions(x_test, test_rows, weight))
    y_test = [str(r["priority"]) for r in test_rows]
    pred = _composed(cat_pred, p_att, threshold)
    baseline = max((k for k in cv if k[0] == 0.0), key=lambda k: cv[k])
    metrics["priority"] = {
        "macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4),
        "served_as": "bulk category -> low; else attention >= threshold -> high; else normal",
        "threshold": threshold,
        "C": strength,
        "question_weight": weight,
        "cv": f"{CV_FOLDS} folds by category template x {CV_SHUFFLES} shuffles, training split",
        "cv_macro_f1": round(cv[weight, strength, threshold], 4),
        "cv_macro_f1_without_questions": round(cv[baseline], 4),
        "cv_macro_f1_by_weight_C_threshold": {
            f"w={w} C={c} t={t}": round(v, 4) for (w, c, t), v in cv.items()
        },
        "report": classification_report(y_test, pred, output_dict=True, zero_division=0),
    }
    x_direct = _with_questions(x_train, train_rows, weight)
    direct = _fit(x_direct, [str(r["priority"]) for r in train_rows]).predict(
        _with_questions(x_test, test_rows, weight)
    )
    metrics["priority_direct"] = {
        "macro_f1": round(float(f1_score(y_test, direct, average="macro")), 4),
        "what": "one 3-class logistic regression on the same inputs (not served)",
    }


def main() -> int:
    arrays, metrics = train(rows())
    blob = save_arrays(arrays)
    (DATA / "model.npz").write_bytes(blob)
    metrics["sha256"] = hashlib.sha256(blob).hexdigest()
    (DATA / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    for head in (*HEADS, "priority", "priority_direct"):
        print(f"{head:16s} macro-F1 {metrics[head]['macro_f1']:.4f} (held-out templates)")
    mb = len(blob) / 1e6
    print(f"vocabulary {metrics['vocabulary']}, model {mb:.2f} MB, {metrics['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
