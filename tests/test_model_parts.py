"""CCTS model parts: the network's shapes, the losses on tiny tensors, perturbation alignment,
checkpoints (local and S3)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lpqlc.composite.normalise import NormStats
from lpqlc.model import (
    Checkpoint,
    HRFormer,
    Perturb,
    hrformer_config,
    info_nce,
    intra_loss,
    load_checkpoint,
    masked_consistency,
    perturb,
    save_checkpoint,
)
from lpqlc.model.perturb import GEOMETRIC


@pytest.mark.parametrize("size,hw", [("small", (64, 64)), ("small", (50, 70)), ("T", (32, 32))])
def test_hrformer_shapes(size: str, hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    m = HRFormer(hrformer_config(size))
    x = torch.randn(2, 5, *hw)
    f = m.encode(x)
    assert f.shape == (2, sum(m.cfg.widths), math.ceil(hw[0] / 4), math.ceil(hw[1] / 4))
    y = m(x)
    assert y.shape == (2, 8, *hw) and torch.isfinite(y).all()
    y.mean().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_hrformer_sizes_grow() -> None:
    counts = {s: sum(p.numel() for p in HRFormer(hrformer_config(s)).parameters()) for s in ("small", "T", "S", "B")}
    assert counts["small"] < counts["T"] < counts["S"] < counts["B"]
    assert 40e6 < counts["B"] < 70e6  # paper: 50.3 M for HRFormer-B


# ------------------------------------------------------------------------------------------ losses
def test_info_nce_known_value_and_identical_positives_lower() -> None:
    # two locations × two times; orthogonal locations, identical positives
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    loc = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    # anchor 0: positive cos 1, negatives cos 0 (×2): −log(e^{1/τ} / (e^{1/τ} + 2))
    expect = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert info_nce(e, loc, tau).item() == pytest.approx(expect, rel=1e-5)
    noisy = e + torch.tensor([[0.0, 0.6], [0.0, -0.6], [0.6, 0.0], [-0.6, 0.0]])
    assert info_nce(noisy, loc, tau) > info_nce(e, loc, tau)
    assert info_nce(e, torch.tensor([0, 1, 2, 3]), tau).item() == 0.0  # no positive pairs


def test_masked_consistency_known_value() -> None:
    logits = torch.zeros(1, 2, 1, 2)  # uniform prediction: CE = log 2 wherever counted
    probs = torch.tensor([[[[0.99, 0.6]], [[0.01, 0.4]]]])  # confident at pixel 0 only
    got = masked_consistency(logits, probs, threshold=0.95)
    assert got.item() == pytest.approx(math.log(2) / 2)  # one of two pixels counts
    valid = torch.tensor([[[False, True]]])
    assert masked_consistency(logits, probs, 0.95, valid).item() == 0.0
    assert intra_loss(torch.tensor(2.0), torch.tensor(4.0), torch.tensor(8.0)).item() == pytest.approx(4.0)


# ------------------------------------------------------------------------------------ perturbations
def _coded() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An image whose band 0 encodes the pseudo-label of each pixel, and those one-hot probabilities."""
    g = torch.Generator().manual_seed(1)
    # 4×4-pixel blocks of one label, so a bilinear resample is integral inside them
    labels = torch.randint(0, 4, (2, 6, 8), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    image = torch.cat([labels[:, None].float(), torch.randn(2, 4, 24, 32, generator=g)], 1)
    probs = F.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    return image, probs, torch.ones(2, 24, 32, dtype=torch.bool)


@pytest.mark.parametrize("kind", GEOMETRIC)
def test_geometric_perturbations_keep_image_and_pseudo_labels_aligned(kind: str) -> None:
    image, probs, valid = _coded()
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        x, p, v = perturb(image, probs, valid, g, Perturb(kinds=(kind,)))
        assert x.shape[-2:] == p.shape[-2:] == v.shape[-2:]
        label_from_image = x[:, 0]
        label = p.argmax(1).float()
        if kind == "crop":  # bilinear image vs nearest labels: compare where the image is integral
            exact = (label_from_image - label_from_image.round()).abs() < 1e-4
            assert exact.float().mean() > 0.3
            assert torch.equal(label_from_image[exact & v].round(), label[exact & v])
        else:
            assert torch.equal(label_from_image[v], label[v])
        assert v.float().mean() > 0.5


def test_photometric_perturbations_leave_labels_alone() -> None:
    image, probs, valid = _coded()
    for kind in ("contrast", "blur", "radiometric"):
        x, p, v = perturb(image, probs, valid, torch.Generator().manual_seed(0), Perturb(kinds=(kind,)))
        assert torch.equal(p, probs) and torch.equal(v, valid) and not torch.equal(x, image)
    # radiometric: one gain and offset per image and band (an affine map of each band), missing stays 0
    valid = valid.clone()
    valid[:, :3, :3] = False
    x, _, _ = perturb(image, probs, valid, torch.Generator().manual_seed(1), Perturb(kinds=("radiometric",)))
    for n in range(image.shape[0]):
        for b in range(image.shape[1]):
            src, dst = image[n, b][valid[n]], x[n, b][valid[n]]
            a = torch.linalg.lstsq(torch.stack([src, torch.ones_like(src)], 1), dst[:, None]).solution[:, 0]
            assert torch.allclose(a[0] * src + a[1], dst, atol=1e-4) and 0.8 <= float(a[0]) <= 1.2
    assert bool((x[:, :, :3, :3] == 0).all())


# --------------------------------------------------------------------------------------- checkpoints
def _ckpt() -> Checkpoint:
    torch.manual_seed(3)
    norm = NormStats(mean={b: 0.1 for b in "bgrns"}, std={b: 0.05 for b in "bgrns"}, n={b: 10 for b in "bgrns"})
    landsat = NormStats(mean={b: 0.12 for b in "bgrns"}, std={b: 0.06 for b in "bgrns"}, n={b: 10 for b in "bgrns"})
    return Checkpoint(model=HRFormer(hrformer_config("small")), classes=[10, 20, 30, 40, 50, 60, 80, 90],
                      bands=list("bgrns"), norm=norm, era_norms={"10": norm, "30": landsat},
                      provenance={"stage": "supervised", "epoch": 2, "resolution": 10.0})  # fmt: skip


def _roundtrip(url: str, endpoint: str | None = None) -> None:
    ck = _ckpt()
    ck.model.eval()
    save_checkpoint(ck, url, endpoint)
    back = load_checkpoint(url, endpoint)
    back.model.eval()
    x = torch.randn(1, 5, 32, 32)
    with torch.no_grad():
        assert torch.equal(ck.model(x), back.model(x))
    assert back.classes == ck.classes and back.norm == ck.norm and back.provenance == ck.provenance
    assert back.model.cfg == ck.model.cfg and back.era_norms == ck.era_norms
    # inference picks the quarter's era: 30 m Landsat statistics and a ×3 upsampling onto the 10 m pixels
    assert back.norm_for(30.0).mean["r"] == 0.12 and back.norm_for(10.0) == ck.norm and back.norm_for(20.0) == ck.norm
    assert (back.upsample_for(30.0), back.upsample_for(10.0), back.upsample_for(25.0)) == (3, 1, 1)


def test_checkpoint_roundtrip_local(tmp_path: Path) -> None:
    _roundtrip(str(tmp_path / "m.pt"))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    from lpqlc.errors import LpqlcError

    with pytest.raises(LpqlcError, match="bad.pt"):
        load_checkpoint(str(tmp_path / "bad.pt"))


@pytest.mark.stack
def test_checkpoint_roundtrip_s3(stack: Any) -> None:
    _roundtrip(f"s3://{stack.bucket}/models/m.pt", stack.s3_endpoint)
