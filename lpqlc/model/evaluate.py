"""Accuracy assessment (SCIENCE.md §2); prediction is :func:`lpqlc.classify.run.predict_quarter`.

Metrics: overall accuracy (OA), Cohen's Kappa, FWIoU = Σ_c (n_c/N)·IoU_c, the confusion matrix, and per
class producer's accuracy (PA, recall), user's accuracy (UA, precision) and IoU. The temporal flip
rate is the share of truly unchanged pixels (same true class in consecutive quarters) whose predicted
class changes between those quarters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["confusion", "accuracy", "flip_rate", "Accuracy", "format_table", "format_breakdown"]


def confusion(truth: np.ndarray, pred: np.ndarray, classes: list[int]) -> np.ndarray:
    """(C, C) counts: rows the reference class, columns the predicted class (class codes; 0 ignored)."""
    idx = {c: i for i, c in enumerate(classes)}
    lut = np.full(256, -1, np.int64)
    for c, i in idx.items():
        lut[c] = i
    t, p = lut[truth.ravel().astype(np.int64)], lut[pred.ravel().astype(np.int64)]
    keep = (t >= 0) & (p >= 0)
    n = len(classes)
    return np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n)


@dataclass
class Accuracy:
    oa: float
    kappa: float
    fwiou: float
    confusion: np.ndarray
    pa: np.ndarray
    ua: np.ndarray
    iou: np.ndarray
    classes: list[int]
    n: int

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]

        return {
            "oa": self.oa, "kappa": self.kappa, "fwiou": self.fwiou, "n": self.n, "classes": self.classes,
            "confusion": self.confusion.tolist(), "pa": clean(self.pa), "ua": clean(self.ua), "iou": clean(self.iou),
        }  # fmt: skip


def accuracy(cm: np.ndarray, classes: list[int]) -> Accuracy:
    """OA, Kappa, FWIoU and per-class PA/UA/IoU of a confusion matrix (NaN for empty classes)."""
    cm = cm.astype(np.float64)
    n = cm.sum()
    tp = np.diag(cm)
    ref, pred = cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        oa = tp.sum() / n
        pe = (ref * pred).sum() / n**2
        kappa = (oa - pe) / (1 - pe)
        iou = tp / (ref + pred - tp)
        pa, ua = tp / ref, tp / pred
    fwiou = float(np.nansum(ref / n * iou))
    return Accuracy(oa=float(oa), kappa=float(kappa), fwiou=fwiou, confusion=cm.astype(np.int64), pa=pa, ua=ua,
                    iou=iou, classes=list(classes), n=int(n))  # fmt: skip


def flip_rate(truth: np.ndarray, pred: np.ndarray) -> tuple[float, int]:
    """(share of truly unchanged pixel-steps whose prediction changes, their number), over (T, H, W)."""
    t0, t1, p0, p1 = truth[:-1], truth[1:], pred[:-1], pred[1:]
    unchanged = (t0 == t1) & (t0 > 0) & (p0 > 0) & (p1 > 0)
    n = int(unchanged.sum())
    return (float((p0 != p1)[unchanged].mean()) if n else float("nan")), n


def format_table(acc: Accuracy, names: dict[int, str]) -> str:
    """A readable text table: the summary line, then PA/UA/IoU per class and the confusion matrix."""
    lines = [f"OA {acc.oa:.4f}   Kappa {acc.kappa:.4f}   FWIoU {acc.fwiou:.4f}   (n = {acc.n})", ""]
    lines.append(f"{'class':<12}{'PA':>8}{'UA':>8}{'IoU':>8}{'ref n':>10}")
    for i, c in enumerate(acc.classes):
        lines.append(f"{names.get(c, str(c)):<12}{acc.pa[i]:>8.3f}{acc.ua[i]:>8.3f}{acc.iou[i]:>8.3f}{acc.confusion[i].sum():>10}")
    lines += ["", "confusion (rows: reference, columns: predicted)", " " * 12 + "".join(f"{c:>8}" for c in acc.classes)]
    for i, c in enumerate(acc.classes):
        lines.append(f"{names.get(c, str(c)):<12}" + "".join(f"{v:>8}" for v in acc.confusion[i]))
    return "\n".join(lines)


def format_breakdown(rows: dict[str, Accuracy], names: dict[int, str]) -> str:
    """One line per scope (a sensor era or a quarter): n, OA, Kappa, FWIoU, then PA/UA/IoU of each class
    as three two-decimal figures ("–" for a class absent from the reference and the prediction)."""
    if not rows:
        return ""
    classes = next(iter(rows.values())).classes
    width = max(len(k) for k in rows) + 2

    def f(v: float) -> str:
        return f"{v:.2f}" if np.isfinite(v) else "–"

    head = f"{'':<{width}}{'n':>9}{'OA':>8}{'Kappa':>8}{'FWIoU':>8}" + "".join(
        f"{names.get(c, str(c))[:14]:>16}" for c in classes)  # fmt: skip
    lines = [head, f"{'':<{width}}{'':>33}" + f"{'PA/UA/IoU':>16}" * len(classes)]
    for label, a in rows.items():
        cells = "".join(f"{f(a.pa[i]) + '/' + f(a.ua[i]) + '/' + f(a.iou[i]):>16}" for i in range(len(a.classes)))
        lines.append(f"{label:<{width}}{a.n:>9}{f(a.oa):>8}{f(a.kappa):>8}{f(a.fwiou):>8}" + cells)
    return "\n".join(lines)
