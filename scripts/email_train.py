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
training rows only; its regularization and threshold are the pair with the best macro-F1 of the
composed priority in a 5-fold cross-validation grouped by template on the training split (the
test split is never looked at before the final score). A direct 3-class priority regression
is scored for comparison (`priority_direct`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score
from sklearn.model_selection import GroupKFold

from pull.email.textmodel import BULK, EMBEDDING_DIM, compose_priority, features, save_arrays

DATA = Path(__file__).resolve().parents[1] / "src" / "pull" / "email" / "data"
HEADS = ("category", "reply", "intent")
THRESHOLDS = [round(0.2 + 0.05 * i, 2) for i in range(13)]  # 0.20 .. 0.80
STRENGTHS = [1.0, 4.0, 20.0]  # the attention head's inverse regularization C, chosen by CV


def rows() -> list[dict[str, Any]]:
    with (DATA / "labeled.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


def _analyzer(row: dict[str, Any]) -> list[str]:
    return features(str(row["subject"]), str(row["body"]), str(row["from_email"]))


def train(data: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    train_rows = [r for r in data if r["split"] == "train"]
    test_rows = [r for r in data if r["split"] == "test"]
    vec = TfidfVectorizer(
        analyzer=_analyzer, sublinear_tf=True, min_df=2, max_features=12_000, dtype=np.float32
    )
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


def _attention(
    arrays: dict[str, Any],
    metrics: dict[str, Any],
    x_train: Any,
    x_test: Any,
    train_rows: list[dict[str, Any]],
    test_rows: list[dict[str, Any]],
    cat_pred: list[str],
) -> None:
    """The attention head (non-bulk rows: is the priority high?), its threshold by grouped
    cross-validation on the training split, and the held-out score of priority as served."""
    keep = np.array([r["category"] not in BULK for r in train_rows])
    x_keep = x_train[keep]
    rows_keep = [r for r, k in zip(train_rows, keep, strict=True) if k]
    y_keep = [str(r["priority"] == "high") for r in rows_keep]
    groups = [int(r["template"]) for r in rows_keep]
    truth = [str(r["priority"]) for r in rows_keep]
    cats = [str(r["category"]) for r in rows_keep]
    cv: dict[tuple[float, float], float] = {}
    for c in STRENGTHS:
        # out-of-fold attention probabilities, folds grouped by template (unseen phrasings)
        oof = np.zeros(len(rows_keep))
        for fit_idx, val_idx in GroupKFold(n_splits=5).split(x_keep, y_keep, groups):
            clf = _fit(x_keep[fit_idx], [y_keep[i] for i in fit_idx], c)
            proba = clf.predict_proba(x_keep[val_idx])
            oof[val_idx] = proba[:, list(clf.classes_).index("True")]
        for t in THRESHOLDS:
            cv[c, t] = float(f1_score(truth, _composed(cats, oof, t), average="macro"))
    strength, threshold = max(cv, key=lambda k: (round(cv[k], 4), -abs(k[1] - 0.5), -k[0]))
    clf = _fit(x_keep, y_keep, strength)
    coef, bias = clf.coef_, clf.intercept_  # binary: softmax over [0, w.x + b] is the sigmoid
    arrays["attention_classes"] = np.array([str(c) for c in clf.classes_])
    arrays["attention_w"] = np.vstack([np.zeros_like(coef), coef]).T.astype(np.float32)
    arrays["attention_b"] = np.array([0.0, bias[0]]).astype(np.float32)
    arrays["attention_threshold"] = np.array([threshold], dtype=np.float32)
    # held out: the category head's prediction decides bulk, as when serving
    p_att = clf.predict_proba(x_test)[:, list(clf.classes_).index("True")]
    y_test = [str(r["priority"]) for r in test_rows]
    pred = _composed(cat_pred, p_att, threshold)
    metrics["priority"] = {
        "macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4),
        "served_as": "bulk category -> low; else attention >= threshold -> high; else normal",
        "threshold": threshold,
        "C": strength,
        "cv_macro_f1_by_C_and_threshold": {f"C={c} t={t}": round(v, 4) for (c, t), v in cv.items()},
        "report": classification_report(y_test, pred, output_dict=True, zero_division=0),
    }
    direct = _fit(x_train, [str(r["priority"]) for r in train_rows]).predict(x_test)
    metrics["priority_direct"] = {
        "macro_f1": round(float(f1_score(y_test, direct, average="macro")), 4),
        "what": "one 3-class logistic regression on the same features (not served)",
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
