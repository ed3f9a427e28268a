"""Train the email text model and write src/pull/email/data/model.npz + metrics.json.

    uv run python scripts/email_train.py          # deterministic: same data, same bytes

TF-IDF (unigrams + bigrams + sender domain, sublinear tf) feeding four multinomial logistic
regressions (category, priority, reply-worthy, reply intent), trained on the `train` split of
data/labeled.jsonl and scored on the held-out `test` split (templates never seen in training);
plus a 128-dimension LSA (truncated SVD of the same TF-IDF) for semantic search. scikit-learn
is needed only here; serving is numpy (pull.email.textmodel).
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

from pull.email.textmodel import EMBEDDING_DIM, features, save_arrays

DATA = Path(__file__).resolve().parents[1] / "src" / "pull" / "email" / "data"
HEADS = ("category", "priority", "reply", "intent")


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
        metrics[head] = {
            "macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4),
            "report": classification_report(y_test, pred, output_dict=True, zero_division=0),
        }
    svd = TruncatedSVD(n_components=EMBEDDING_DIM, algorithm="randomized", random_state=0)
    svd.fit(vec.transform(data))
    arrays["lsa"] = svd.components_.T.astype(np.float16)
    metrics["lsa_explained_variance"] = round(float(svd.explained_variance_ratio_.sum()), 4)
    return arrays, metrics


def main() -> int:
    arrays, metrics = train(rows())
    blob = save_arrays(arrays)
    (DATA / "model.npz").write_bytes(blob)
    metrics["sha256"] = hashlib.sha256(blob).hexdigest()
    (DATA / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    for head in HEADS:
        print(f"{head:10s} macro-F1 {metrics[head]['macro_f1']:.4f} (held-out templates)")
    mb = len(blob) / 1e6
    print(f"vocabulary {metrics['vocabulary']}, model {mb:.2f} MB, {metrics['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
