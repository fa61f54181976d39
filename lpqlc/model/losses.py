"""The CCTS losses (SCIENCE.md §1): inter-temporal InfoNCE, supervised cross-entropy, and the
confidence-masked consistency losses of intra-temporal self-refinement."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["info_nce", "masked_consistency", "intra_loss", "IGNORE"]

#: Label value ignored by the cross-entropy (nodata pixels).
IGNORE = 255


def info_nce(embeddings: torch.Tensor, location: torch.Tensor, temperature: float) -> torch.Tensor:
    """Inter-temporal contrastive loss over a batch of embeddings.

    ``embeddings`` (N, D): one embedding per (location, time) sample; ``location`` (N,) integer ids.
    Samples of the same location at other times are the positives, every other sample the negatives:
    L = mean over anchors and their positives of −log( exp(cos(e_a, e_p)/τ) / Σ_{k≠a} exp(cos(e_a, e_k)/τ) ).
    Anchors without a positive in the batch are skipped; returns 0 if none has one.
    """
    z = F.normalize(embeddings.float(), dim=1)
    sim = z @ z.T / temperature
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (location[:, None] == location[None, :]) & ~eye
    if not positive.any():
        return embeddings.sum() * 0.0
    return -log_prob[positive].mean()


def masked_consistency(logits: torch.Tensor, pseudo_probs: torch.Tensor, threshold: float,
                       valid: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Mean over pixels of 1(max p^u ≥ λ)·H(p^u, p): cross-entropy of ``logits`` against the hard
    pseudo-label argmax p^u where its confidence reaches ``threshold`` (FixMatch-style).

    ``logits``, ``pseudo_probs``: (N, C, H, W); ``valid`` (N, H, W) bool masks nodata out.
    The mean runs over all (valid) pixels, so low-confidence pixels count as zero.
    """
    conf, label = pseudo_probs.max(dim=1)
    keep = conf >= threshold
    if valid is not None:
        keep &= valid
    ce = F.cross_entropy(logits.float(), label, reduction="none")
    denom = valid.sum() if valid is not None else torch.tensor(ce.numel(), device=ce.device)
    return (ce * keep).sum() / denom.clamp(min=1)


def intra_loss(l_seg: torch.Tensor, l_ic: torch.Tensor, l_fp: torch.Tensor,
               weights: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> torch.Tensor:  # fmt: skip
    """L_intra = w_seg·L_seg + w_ic·L_ic + w_fp·L_fp (½, ¼, ¼ by default)."""
    return weights[0] * l_seg + weights[1] * l_ic + weights[2] * l_fp
