"""Band-normalisation statistics (mean, standard deviation per band) of composites, for the model.

Computed once from the composites (chunk-wise sums, so tiles processed apart merge exactly) and saved
as JSON beside them; the model's datasets read them back (SCIENCE.md §1: normalised band-wise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpqlc.errors import LpqlcError

__all__ = ["BandSums", "NormStats"]


@dataclass
class BandSums:
    """Running n, Σx, Σx² per band (float64), mergeable across chunks and tiles."""

    n: dict[str, int] = field(default_factory=dict)
    s1: dict[str, float] = field(default_factory=dict)
    s2: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, arrays: dict[str, np.ndarray]) -> BandSums:
        out = cls()
        for band, a in arrays.items():
            v = np.asarray(a, dtype=np.float64)
            v = v[np.isfinite(v)]
            out.n[band], out.s1[band], out.s2[band] = int(v.size), float(v.sum()), float((v * v).sum())
        return out

    def __add__(self, other: BandSums) -> BandSums:
        bands = sorted(set(self.n) | set(other.n))
        return BandSums(
            n={b: self.n.get(b, 0) + other.n.get(b, 0) for b in bands},
            s1={b: self.s1.get(b, 0.0) + other.s1.get(b, 0.0) for b in bands},
            s2={b: self.s2.get(b, 0.0) + other.s2.get(b, 0.0) for b in bands},
        )

    def stats(self, source: str = "") -> NormStats:
        mean, std = {}, {}
        for b, n in self.n.items():
            if n < 2:
                raise LpqlcError(f"band {b!r} has {n} valid pixel(s): normalisation statistics are undefined")
            m = self.s1[b] / n
            mean[b] = m
            std[b] = float(np.sqrt(max(self.s2[b] / n - m * m, 0.0)))
        return NormStats(mean=mean, std=std, n=dict(self.n), source=source)


@dataclass(frozen=True)
class NormStats:
    """Per-band mean and standard deviation (reflectance units) and the pixel count behind them."""

    mean: dict[str, float]
    std: dict[str, float]
    n: dict[str, int]
    source: str = ""

    def to_json(self) -> bytes:
        doc = {"mean": self.mean, "std": self.std, "n": self.n, "source": self.source}
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, blob: bytes | str, where: str = "normalisation statistics") -> NormStats:
        try:
            doc: dict[str, Any] = json.loads(blob)
            return cls(mean=doc["mean"], std=doc["std"], n=doc.get("n", {}), source=doc.get("source", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise LpqlcError(f"{where}: not a normalisation-statistics JSON ({exc})") from None

    def normalise(self, x: np.ndarray, bands: list[str]) -> np.ndarray:
        """(band, …) reflectance → (x − mean)/std per band, float32."""
        mean = np.array([self.mean[b] for b in bands], np.float32).reshape((-1,) + (1,) * (x.ndim - 1))
        std = np.array([self.std[b] or 1.0 for b in bands], np.float32).reshape(mean.shape)
        return ((x - mean) / std).astype(np.float32)
