"""Checkpoints: weights, the network config, the class map, normalisation statistics and provenance,
in one torch file at a local path or an ``s3://`` URL (written atomically, loaded without pickle code)."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from lpqlc.composite.normalise import NormStats
from lpqlc.errors import LpqlcError
from lpqlc.model.hrformer import HRFormer, HRFormerConfig
from lpqlc.storage import Store, read_bytes, write_bytes

__all__ = ["Checkpoint", "era_key", "save_checkpoint", "load_checkpoint", "checkpoint_from_bytes"]

FORMAT = "lpqlc-ccts-1"


@dataclass
class Checkpoint:
    """A trained (or training) model and everything needed to use it.

    ``classes``: output channel index → class code (e.g. WorldCover 10 …); ``bands``: input band
    order; ``norm``: the label era's normalisation; ``era_norms``: normalisation per sensor era keyed
    by the era's pixel size in metres (``"30"`` Landsat, ``"10"`` Sentinel-2) — inference uses the one
    of the quarter's era (:meth:`norm_for`); ``provenance``: free-form facts (stage, epoch, config
    hash, data, seed, versions; ``resolution``: the pixel size the network was trained at).
    """

    model: HRFormer
    classes: list[int]
    bands: list[str]
    norm: NormStats
    provenance: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    era_norms: dict[str, NormStats] = field(default_factory=dict)

    def norm_for(self, resolution: float) -> NormStats:
        """Normalisation of the sensor era whose pixels are ``resolution`` metres (the label era's
        when the checkpoint holds none for that era, as checkpoints trained on one era do)."""
        return self.era_norms.get(era_key(resolution), self.norm)

    def upsample_for(self, resolution: float) -> int:
        """Integer factor by which a ``resolution`` m image is upsampled so the network sees the pixel
        size it was trained at (3 for a 30 m Landsat quarter of a model trained on 10 m tiles; 1 when
        the sizes agree, do not nest, or the checkpoint does not say)."""
        trained = float(self.provenance.get("resolution") or 0)
        if trained <= 0 or resolution <= trained:
            return 1
        k = round(resolution / trained)
        return k if abs(k * trained - resolution) < 1e-6 else 1


def era_key(resolution: float) -> str:
    """The key of a sensor era in :attr:`Checkpoint.era_norms`: its pixel size in metres (``"30"``)."""
    return f"{float(resolution):g}"


def _norm_doc(n: NormStats) -> dict[str, Any]:
    return {"mean": n.mean, "std": n.std, "n": n.n, "source": n.source}


def _norm_of(n: dict[str, Any]) -> NormStats:
    return NormStats(mean=n["mean"], std=n["std"], n=n["n"], source=n["source"])


def save_checkpoint(ckpt: Checkpoint, url: str, store: Store | None = None) -> None:
    """Write ``ckpt`` to ``url`` (readers see the old file or the whole new one)."""
    doc = {
        "format": FORMAT,
        "state_dict": ckpt.model.state_dict(),
        "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(ckpt.model.cfg).items()},
        "classes": list(ckpt.classes),
        "bands": list(ckpt.bands),
        "norm": _norm_doc(ckpt.norm),
        "era_norms": {k: _norm_doc(v) for k, v in ckpt.era_norms.items()},
        "provenance": ckpt.provenance,
        "optimizer": ckpt.optimizer,
    }
    buf = io.BytesIO()
    torch.save(doc, buf)
    write_bytes(url, buf.getvalue(), store)


def load_checkpoint(url: str, store: Store | None = None, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    return checkpoint_from_bytes(read_bytes(url, store), url, map_location)


def checkpoint_from_bytes(blob: bytes, url: str, map_location: str | torch.device = "cpu") -> Checkpoint:
    """A checkpoint from the bytes of a file written by :func:`save_checkpoint`; ``url`` names it in errors."""
    try:
        doc = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises many kinds for a bad file
        raise LpqlcError(f"{url}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LpqlcError(f"{url}: not an lpqlc checkpoint (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    mc = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["model_config"].items()}
    model = HRFormer(HRFormerConfig(**mc))
    model.load_state_dict(doc["state_dict"])
    return Checkpoint(model=model, classes=list(doc["classes"]), bands=list(doc["bands"]), norm=_norm_of(doc["norm"]),
                      provenance=dict(doc["provenance"]), optimizer=doc.get("optimizer"),
                      era_norms={k: _norm_of(v) for k, v in (doc.get("era_norms") or {}).items()})  # fmt: skip
