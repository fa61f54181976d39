"""Prediction over an area and accuracy assessment (SCIENCE.md §2).

Metrics: overall accuracy (OA), Cohen's Kappa, FWIoU = Σ_c (n_c/N)·IoU_c, the confusion matrix, and per
class producer's accuracy (PA, recall), user's accuracy (UA, precision) and IoU. The temporal flip
rate is the share of truly unchanged pixels (same true class in consecutive quarters) whose predicted
class changes between those quarters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lpqlc.model.hrformer import HRFormer

__all__ = ["predict_area", "confusion", "accuracy", "flip_rate", "Accuracy", "format_table"]


@torch.no_grad()
def predict_area(model: HRFormer, image: np.ndarray, valid: np.ndarray, classes: list[int], *, tile: int = 256,
                 overlap: int = 32, device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Class codes (H, W) uint8 (0 where invalid) and class probabilities (C, H, W) float32 of a
    normalised image (B, H, W), by overlapping tiles whose centres are kept (no seams)."""
    dev = device or next(model.parameters()).device
    model.eval()
    b, h, w = image.shape
    step = max(1, tile - 2 * overlap)
    probs = np.zeros((len(classes), h, w), np.float32)
    th, tw = min(tile, h), min(tile, w)
    ys = sorted({*range(0, max(h - th, 0) + 1, step), max(h - th, 0)})
    xs = sorted({*range(0, max(w - tw, 0) + 1, step), max(w - tw, 0)})
    for y0 in ys:
        for x0 in xs:
            x = torch.from_numpy(np.ascontiguousarray(image[None, :, y0 : y0 + th, x0 : x0 + tw])).to(dev)
            p = torch.softmax(model(x).float(), 1)[0].cpu().numpy()
            # keep the centre; at the area's edges keep up to the edge
            top = 0 if y0 == 0 else overlap
            left = 0 if x0 == 0 else overlap
            bottom = th if y0 + th >= h else th - overlap
            right = tw if x0 + tw >= w else tw - overlap
            probs[:, y0 + top : y0 + bottom, x0 + left : x0 + right] = p[:, top:bottom, left:right]
    codes = np.asarray(classes, np.uint8)[probs.argmax(0)]
    codes[~valid] = 0
    return codes, probs


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
