"""Image perturbations of intra-temporal self-refinement (SCIENCE.md §1, CCTS stage 3).

Geometric ones (flip, 90° rotation, shift, crop-and-resize) move the image, the pseudo-label
probabilities and the validity mask together, so they stay pixel-aligned; photometric ones (contrast,
Gaussian blur, and ``radiometric``: a per-image, per-band gain and offset of the normalised bands, the
way illumination, haze and sensor differences change an unchanged surface between quarters) touch the
image only. Shifted-in and cropped-away pixels are marked invalid.
Tensors: image (N, B, H, W), probs (N, C, H, W), valid (N, H, W) bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Perturb", "perturb", "GEOMETRIC", "PHOTOMETRIC"]

GEOMETRIC = ("flip", "rotate", "shift", "crop")
PHOTOMETRIC = ("contrast", "blur", "radiometric")


@dataclass(frozen=True)
class Perturb:
    """Which perturbations to draw from, and their strengths."""

    kinds: tuple[str, ...] = GEOMETRIC + PHOTOMETRIC
    max_shift: float = 0.125
    min_crop: float = 0.6
    contrast: tuple[float, float] = (0.7, 1.3)
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    #: Radiometric: per image and band, x' = a·x + c with a in ``gain`` and c in ``offset`` (normalised units).
    gain: tuple[float, float] = (0.8, 1.2)
    offset: tuple[float, float] = (-0.4, 0.4)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def perturb(image: torch.Tensor, probs: torch.Tensor, valid: torch.Tensor, generator: torch.Generator,
            cfg: Perturb = Perturb()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """One random perturbation (the same for the whole batch) drawn from ``cfg.kinds``."""
    kind = cfg.kinds[int(torch.randint(len(cfg.kinds), (1,), generator=generator))]

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=generator))

    h, w = image.shape[-2:]
    v = valid[:, None].float()
    if kind == "flip":
        dims = [-1] if torch.rand(1, generator=generator) < 0.5 else [-2]
        return image.flip(dims), probs.flip(dims), v.flip(dims)[:, 0] > 0.5
    if kind == "rotate":
        k = int(torch.randint(1, 4, (1,), generator=generator))
        return (image.rot90(k, (-2, -1)), probs.rot90(k, (-2, -1)), valid.rot90(k, (-2, -1)))
    if kind == "shift":
        dy = int(round(u(-cfg.max_shift, cfg.max_shift) * h))
        dx = int(round(u(-cfg.max_shift, cfg.max_shift) * w))
        out_valid = valid.roll((dy, dx), (-2, -1)).clone()
        if dy > 0:
            out_valid[:, :dy] = False
        elif dy < 0:
            out_valid[:, dy:] = False
        if dx > 0:
            out_valid[:, :, :dx] = False
        elif dx < 0:
            out_valid[:, :, dx:] = False
        return image.roll((dy, dx), (-2, -1)), probs.roll((dy, dx), (-2, -1)), out_valid
    if kind == "crop":
        s = u(cfg.min_crop, 1.0)
        ch, cw = max(2, int(h * s)), max(2, int(w * s))
        y0 = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        x0 = int(torch.randint(0, w - cw + 1, (1,), generator=generator))

        def crop(t: torch.Tensor, mode: str) -> torch.Tensor:
            kw = {"align_corners": False} if mode == "bilinear" else {}
            return F.interpolate(t[..., y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode=mode, **kw)

        return crop(image, "bilinear"), crop(probs, "nearest-exact"), crop(v, "nearest-exact")[:, 0] > 0.5
    if kind == "contrast":
        mean = image.mean(dim=(-2, -1), keepdim=True)
        return (image - mean) * u(*cfg.contrast) + mean, probs, valid
    if kind == "radiometric":
        n, b = image.shape[:2]
        a = cfg.gain[0] + (cfg.gain[1] - cfg.gain[0]) * torch.rand((n, b, 1, 1), generator=generator)
        c = cfg.offset[0] + (cfg.offset[1] - cfg.offset[0]) * torch.rand((n, b, 1, 1), generator=generator)
        out = image * a.to(image) + c.to(image)
        return out * valid[:, None].to(image), probs, valid  # missing pixels stay 0
    if kind == "blur":
        return _blur(image, u(*cfg.blur_sigma)), probs, valid
    raise ValueError(f"unknown perturbation {kind!r} (known: {GEOMETRIC + PHOTOMETRIC})")
