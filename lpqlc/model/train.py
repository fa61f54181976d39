"""The three CCTS training stages (SCIENCE.md §1) with checkpoints, resume and loss logs.

1. ``contrastive``: the encoder's pooled embeddings of one tile at two quarters are a positive pair
   (InfoNCE, temperature τ), through a projection head that is discarded after the stage.
2. ``supervised``: pixel-wise cross-entropy on the labelled set (class-balanced tiles).
3. ``refine``: for unlabelled x, p^u = softmax(model(x)) without gradient is the pseudo-label;
   L_ic against the prediction of a perturbed image (geometry applied to p^u too), L_fp against the
   decoding of the encoder features with half the channels dropped (Dropout2d 0.5), both masked by
   confidence ≥ λ; L = ½ L_seg + ¼ L_ic + ¼ L_fp. With ``ccts.consistency: cross-time`` L_ic compares
   the pseudo-label of one quarter of a tile with the prediction on another quarter of it (perturbed too).

Optimiser and learning rate (``ccts.schedule``): ``continuous`` keeps one AdamW for the network across the
stages (its moments carry over) and decays the rate by one cosine over all configured steps of the three
stages (:func:`learning_rate`); ``per-stage`` restarts AdamW and the cosine at each stage.

Each stage writes ``<out>/<stage>.pt`` when done, and ``<out>/latest.pt`` after every epoch (with the
optimiser state); a rerun skips finished stages and resumes an unfinished one from its last epoch, with
the optimiser's moments and the rate where they were (the tile draws restart from the seed). Losses go to
``<out>/losses.csv`` and ``<out>/losses.png``.
"""

from __future__ import annotations

import csv
import io
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lpqlc import __version__
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lpqlc.model.data import Sampler, TrainingData
from lpqlc.model.hrformer import HRFormer, hrformer_config
from lpqlc.model.losses import IGNORE, info_nce, intra_loss, masked_consistency
from lpqlc.model.perturb import Perturb, perturb
from lpqlc.publish.preview import png_bytes
from lpqlc.storage import Store, exists, read_bytes, write_bytes

__all__ = ["STAGES", "TrainResult", "train", "pick_device", "learning_rate"]

log = logging.getLogger(__name__)

STAGES = ("contrastive", "supervised", "refine")


@dataclass
class TrainResult:
    checkpoint: str
    losses: list[dict[str, Any]]
    device: str
    #: Tiles drawn in this run per (use, quarter): uses ``pairs`` (stage 1), ``labelled``, ``unlabelled`` (stage 3).
    draws: dict[tuple[str, str], int] = field(default_factory=dict)


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def learning_rate(cc: Any, stage: str, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based, within ``stage``) under ``cc.schedule``.

    ``continuous``: the stages occupy consecutive slots of one schedule (contrastive, supervised, refine;
    each ``epochs × steps_per_epoch`` steps as configured, a stage with 0 epochs takes no slot) and the
    rate is ``learning_rate · ½(1 + cos(π t / T))`` at global step t of T; so the refine stage starts
    where the supervised stage's rate ended. ``per-stage``: the same cosine over the stage alone
    (torch's ``CosineAnnealingLR`` with ``eta_min`` 0, in closed form so a resume lands exactly)."""
    import math

    n = {s: cc.epochs.get(s, 0) * cc.steps_per_epoch for s in STAGES}
    if cc.schedule == "per-stage":
        t, total = step, n[stage]
    else:
        t, total = sum(n[s] for s in STAGES[: STAGES.index(stage)]) + step, sum(n.values())
    return float(cc.learning_rate * 0.5 * (1.0 + math.cos(math.pi * t / max(1, total))))


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _autocast(device: torch.device, enabled: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def _t(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def _contrastive_step(model: HRFormer, proj: nn.Module, s: Sampler, n: int, tau: float, dev: torch.device,
                      amp: bool) -> dict[str, torch.Tensor]:  # fmt: skip
    """InfoNCE step; ``pair_acc`` (diagnostic): share of embeddings whose nearest other one is their positive."""
    x, loc = s.pairs(n)
    loc_t = _t(loc, dev)
    with _autocast(dev, amp):
        z = proj(model.encode(_t(x, dev)).mean(dim=(-2, -1)))
    with torch.no_grad():
        zn = F.normalize(z.detach().float(), dim=1)
        sim = (zn @ zn.T).fill_diagonal_(float("-inf"))
        pair_acc = (loc_t[sim.argmax(1)] == loc_t).float().mean()
    return {"loss": info_nce(z, loc_t, tau), "pair_acc": pair_acc}


def _supervised_step(model: HRFormer, s: Sampler, n: int, dev: torch.device, amp: bool) -> dict[str, torch.Tensor]:
    x, y = s.labelled(n)
    with _autocast(dev, amp):
        logits = model(_t(x, dev))
    return {"loss": F.cross_entropy(logits.float(), _t(y, dev), ignore_index=IGNORE)}


class _KeepBNStats:
    """Within it, BatchNorm layers in train mode normalise with the batch's statistics but do not move
    their running statistics (momentum 0): for forward passes on images inference never sees."""

    def __init__(self, model: nn.Module, active: bool = True):
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if active else []
        self.saved: list[Any] = []

    def __enter__(self) -> None:
        self.saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
                      for m in self.bns]  # fmt: skip
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc: Any) -> None:
        for m, (momentum, tracked) in zip(self.bns, self.saved, strict=True):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def _refine_step(model: HRFormer, s: Sampler, n: int, cfg: Any, dev: torch.device, gen: torch.Generator,
                 amp: bool) -> dict[str, torch.Tensor]:  # fmt: skip
    """One stage-3 step. L_ic's second view is a perturbation of the same quarter (``consistency:
    perturbed``) or of another quarter of the same tiles (``cross-time``). Diagnostics: ``kept``, the
    share of valid pixels whose pseudo-label reaches λ; ``agree``, the share of valid pixels whose
    prediction on the second view equals the pseudo-label."""
    xl, yl = s.labelled(n)
    if cfg.consistency == "cross-time":
        xa, va, xb, vb = s.unlabelled_pairs(n)
        xu_t, vu_t = _t(xa, dev), _t(va, dev)
        x2, v2 = _t(xb, dev), vu_t & _t(vb, dev)
    else:
        xu, vu = s.unlabelled_batch(n)
        xu_t, vu_t = _t(xu, dev), _t(vu, dev)
        x2, v2 = xu_t, vu_t
    keep = cfg.refine_bn_stats == "labelled"
    with _autocast(dev, amp):
        l_seg = F.cross_entropy(model(_t(xl, dev)).float(), _t(yl, dev), ignore_index=IGNORE)
        with _KeepBNStats(model, keep):  # unlabelled, perturbed, dropped-feature passes (ccts.refine_bn_stats)
            with torch.no_grad():
                p_u = torch.softmax(model(xu_t).float(), dim=1)
            xi, pi, vi = perturb(x2, p_u, v2, gen, Perturb(kinds=tuple(cfg.perturbations)))
            logits_i = model(xi)
            l_ic = masked_consistency(logits_i, pi, cfg.confidence_threshold, vi)
            feats = F.dropout2d(model.encode(xu_t), p=cfg.feature_dropout, training=True)
            p_f = model.decode(feats, tuple(xu_t.shape[-2:]))
            l_fp = masked_consistency(p_f, p_u, cfg.confidence_threshold, vu_t)
    with torch.no_grad():
        nv = vu_t.sum().clamp(min=1)
        kept = ((p_u.max(1).values >= cfg.confidence_threshold) & vu_t).sum() / nv
        agree = ((logits_i.argmax(1) == pi.argmax(1)) & vi).sum() / vi.sum().clamp(min=1)
    loss = intra_loss(l_seg, l_ic, l_fp, (cfg.weight_seg, cfg.weight_ic, cfg.weight_fp))
    return {"loss": loss, "seg": l_seg, "ic": l_ic, "fp": l_fp, "kept": kept, "agree": agree}


def _plot_losses(rows: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for stage in STAGES:
        pts = [(i, r["loss"]) for i, r in enumerate(rows) if r["stage"] == stage]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=stage)
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("mean loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return png_bytes(fig)


def _read_losses(url: str, store: Store | None) -> list[dict[str, Any]]:
    if not exists(url, store):
        return []
    rows = list(csv.DictReader(io.StringIO(read_bytes(url, store).decode())))
    return [{k: (v if k == "stage" else float(v)) for k, v in r.items() if v != ""} for r in rows]


def train(
    cfg: PipelineConfig,
    data: TrainingData,
    out: str,
    *,
    stages: tuple[str, ...] = STAGES,
    device: str | None = None,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> TrainResult:
    """Run the CCTS ``stages`` in order on ``data``; checkpoints and logs under ``out`` (path or s3://)."""
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise LpqlcError(f"unknown training stage(s) {bad}: choose from {list(STAGES)}")
    cc = cfg.science.ccts
    store = cfg.store
    dev = pick_device(device)
    _seed(cc.seed)
    model = HRFormer(hrformer_config(cc.size, in_channels=len(data.bands), num_classes=len(data.classes),
                                     window=cc.attention_window, mlp_ratio=cc.mlp_ratio))  # fmt: skip
    losses_url, plot_url = f"{out}/losses.csv", f"{out}/losses.png"
    rows = _read_losses(losses_url, store)
    start_epoch: dict[str, int] = {}
    latest = f"{out}/latest.pt"
    finished = [s for s in stages if exists(f"{out}/{s}.pt", store)]
    todo = [s for s in stages if s not in finished]
    resumed = False
    opt_state: dict[str, Any] | None = None  # the optimiser where the last run left it (continuous schedule)
    last_ck = load_checkpoint(latest, store) if todo and exists(latest, store) else None
    if last_ck is not None and last_ck.provenance.get("stage") == todo[0]:  # resume an interrupted stage
        model.load_state_dict(last_ck.model.state_dict())
        start_epoch[todo[0]] = int(last_ck.provenance.get("epoch", -1)) + 1
        opt_state = last_ck.optimizer
        resumed = True
        log.info("resuming %s from epoch %d (%s)", todo[0], start_epoch[todo[0]], latest)
    if not resumed and finished:  # start from the last finished stage
        model.load_state_dict(load_checkpoint(f"{out}/{finished[-1]}.pt", store).model.state_dict())
        if last_ck is not None and last_ck.provenance.get("stage") == finished[-1]:
            opt_state = last_ck.optimizer  # latest.pt is that stage's end, with its optimiser
    rows = [r for r in rows if r["stage"] in finished or (r["stage"] in start_epoch and r["epoch"] < start_epoch[r["stage"]])]
    model.to(dev)
    sampler = Sampler(data, cc.tile_size, cc.seed)
    gen = torch.Generator(device=dev).manual_seed(cc.seed) if dev.type == "cuda" else torch.Generator().manual_seed(cc.seed)
    done_any = ""

    def adamw(params: Any) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=cc.learning_rate, weight_decay=cc.weight_decay)

    # the network's optimiser: one for all stages (continuous) or made again at each stage (per-stage); the
    # saved state continues it (per-stage: only within the interrupted stage)
    opt = adamw(model.parameters())
    if opt_state and (cc.schedule == "continuous" or resumed):
        opt.load_state_dict(opt_state)
    for stage in stages:
        final = f"{out}/{stage}.pt"
        if stage in finished:
            log.info("stage %s already trained (%s): skipped", stage, final)
            done_any = final
            continue
        epochs = cc.epochs.get(stage, 0)
        proj = nn.Sequential(nn.Linear(model.features, model.features), nn.ReLU(), nn.Linear(model.features, cc.projection_dim)).to(dev)
        if cc.schedule == "per-stage" and not (resumed and stage == todo[0]):
            opt = adamw(model.parameters())
        # the projection head lives for stage 1 only: its own AdamW, at the network's rate
        opts = [opt] + ([adamw(proj.parameters())] if stage == "contrastive" else [])
        first = start_epoch.get(stage, 0)
        for epoch in range(first, epochs):
            model.train()
            sums: dict[str, float] = {}
            for _step in range(cc.steps_per_epoch):
                lr = learning_rate(cc, stage, epoch * cc.steps_per_epoch + _step)
                for o in opts:
                    for group in o.param_groups:
                        group["lr"] = lr
                if stage == "contrastive":
                    parts = _contrastive_step(model, proj, sampler, cc.batch_size, cc.temperature, dev, cc.amp)
                elif stage == "supervised":
                    parts = _supervised_step(model, sampler, cc.batch_size, dev, cc.amp)
                else:
                    parts = _refine_step(model, sampler, cc.batch_size, cc, dev, gen, cc.amp)
                for o in opts:
                    o.zero_grad(set_to_none=True)
                parts["loss"].backward()
                for o in opts:
                    o.step()
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            row = {"stage": stage, "epoch": epoch, **{k: v / cc.steps_per_epoch for k, v in sums.items()}, "lr": lr}
            rows.append(row)
            log.info("%s epoch %d: %s", stage, epoch, {k: round(v, 4) for k, v in row.items() if k not in ("stage", "epoch")})
            if stage == "refine" and row.get("kept", 1.0) < 0.01:
                log.warning("refine epoch %d: %.2f %% of the unlabelled pixels reach the confidence threshold λ = %g, so "
                            "L_ic and L_fp carry almost no signal (the model is not yet confident: train stage 2 longer "
                            "or lower ccts.confidence_threshold)", epoch, 100 * row["kept"], cc.confidence_threshold)  # fmt: skip
            if progress:
                progress(stage, epoch + 1, epochs, float(row["loss"]))
            ck = _checkpoint(model, data, cfg, stage, epoch, dev)
            ck.optimizer = opt.state_dict()
            save_checkpoint(ck, latest, store)
            _write_logs(rows, losses_url, plot_url, store)
        ck = _checkpoint(model, data, cfg, stage, epochs - 1, dev)
        save_checkpoint(ck, final, store)  # the stage's model (no optimiser: classify reads these)
        ck.optimizer = opt.state_dict()
        save_checkpoint(ck, latest, store)
        done_any = final
    if not done_any:
        raise LpqlcError("no stage was trained")
    return TrainResult(checkpoint=done_any, losses=rows, device=str(dev), draws=dict(sampler.draws))


def _checkpoint(model: HRFormer, data: TrainingData, cfg: PipelineConfig, stage: str, epoch: int,
                dev: torch.device) -> Checkpoint:  # fmt: skip
    cpu = HRFormer(model.cfg)
    cpu.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return Checkpoint(
        model=cpu, classes=list(data.classes), bands=list(data.bands), norm=data.norm, era_norms=dict(data.era_norms),
        provenance={"resolution": data.resolution,
            "stage": stage, "epoch": epoch, "device": str(dev), "lpqlc": __version__, "torch": str(torch.__version__),
            "python": platform.python_version(), "config": cfg.name, "seed": cfg.science.ccts.seed,
            "quarters": [str(q) for q in data.quarters], "labelled": [str(data.quarters[i]) for i in data.labelled],
            "ccts": cfg.science.ccts.model_dump(mode="json"),
        },
    )  # fmt: skip


def _write_logs(rows: list[dict[str, Any]], csv_url: str, png_url: str, store: Store | None) -> None:
    keys = ["stage", "epoch", "loss", "seg", "ic", "fp", "kept", "agree", "pair_acc", "lr"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (int(r[k]) if k == "epoch" else r[k]) for k in keys if k in r})
    write_bytes(csv_url, buf.getvalue().encode(), store)
    write_bytes(png_url, _plot_losses(rows), store)
