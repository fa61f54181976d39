"""HRFormer (Yuan et al. 2021) for semantic segmentation, in plain torch.

Shape: a stem of two stride-2 3×3 convolutions (to 1/4 resolution), stage 1 of HRNet bottleneck
blocks, then stages 2–4 of parallel streams at 1/4, 1/8, 1/16 and 1/32 resolution. Each stream runs
HRFormer blocks: local-window multi-head self-attention (non-overlapping ``window``×``window`` windows,
padded to fit) and a feed-forward block whose hidden layer holds a 3×3 depth-wise convolution (MLP
ratio 4). After every module the streams exchange information by HRNet multi-scale fusion. The
segmentation head concatenates all streams upsampled to 1/4, mixes them with 1×1 convolutions and
upsamples the class logits to the input size.

Sizes of the paper (``HRFORMER_SIZES``): T 18/36/72/144 channels, S 32/64/128/256, B 78/156/312/624;
``small`` trains on a CPU in minutes. Input (N, bands, H, W) float; output logits (N, classes, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HRFormerConfig", "HRFormer", "HRFORMER_SIZES", "hrformer_config"]


@dataclass(frozen=True)
class HRFormerConfig:
    """Network hyper-parameters. ``widths``/``heads`` per stream (1/4 … 1/32), ``modules`` per stage 2–4."""

    in_channels: int = 5
    num_classes: int = 8
    widths: tuple[int, int, int, int] = (18, 36, 72, 144)
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    modules: tuple[int, int, int] = (1, 3, 2)
    blocks: int = 2
    stem_channels: int = 64
    stage1_blocks: int = 2
    window: int = 7
    mlp_ratio: int = 4
    head_channels: int = 0  # 0: the sum of the widths
    dropout: float = 0.0


#: The paper's sizes (stage modules and heads from the HRFormer release) and a CPU-sized one.
HRFORMER_SIZES: dict[str, dict[str, object]] = {
    "T": {"widths": (18, 36, 72, 144), "heads": (1, 2, 4, 8), "modules": (1, 3, 2)},
    "S": {"widths": (32, 64, 128, 256), "heads": (1, 2, 4, 8), "modules": (1, 4, 2)},
    "B": {"widths": (78, 156, 312, 624), "heads": (2, 4, 8, 16), "modules": (1, 4, 2)},
    "small": {"widths": (16, 32, 64, 128), "heads": (1, 2, 4, 8), "modules": (1, 1, 1), "blocks": 1,
              "stem_channels": 32, "stage1_blocks": 1},
}  # fmt: skip


def hrformer_config(size: str, **overrides: object) -> HRFormerConfig:
    """The config of a named size (``T``, ``S``, ``B``, ``small``) with overrides."""
    try:
        base = dict(HRFORMER_SIZES[size])
    except KeyError:
        raise ValueError(f"unknown HRFormer size {size!r}: choose one of {sorted(HRFORMER_SIZES)}") from None
    base.update(overrides)
    return HRFormerConfig(**base)  # type: ignore[arg-type]


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=0.1)


class Bottleneck(nn.Module):
    """HRNet stage-1 bottleneck (1×1 → 3×3 → 1×1, expansion 4) with a projected shortcut."""

    def __init__(self, cin: int, mid: int):
        super().__init__()
        cout = mid * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), _bn(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False), _bn(cout),
        )  # fmt: skip
        self.short = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows (zero-padded to a multiple of ``window``)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # relative position bias, as in Swin/HRFormer
        self.bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)
        nn.init.trunc_normal_(self.bias, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.window
        ph, pw = (-h) % k, (-w) % k
        x = F.pad(x, (0, pw, 0, ph))
        hh, ww = h + ph, w + pw
        # (n, c, hh, ww) → (n·windows, k·k, c)
        t = x.view(n, c, hh // k, k, ww // k, k).permute(0, 2, 4, 3, 5, 1).reshape(-1, k * k, c)
        qkv = self.qkv(t).view(t.shape[0], k * k, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, kk, v = qkv[0], qkv[1], qkv[2]
        bias = self.bias[:, self.rel_index.reshape(-1)].view(self.heads, k * k, k * k)
        out = F.scaled_dot_product_attention(q, kk, v, attn_mask=bias.to(q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(t.shape[0], k * k, c))
        out = out.view(n, hh // k, ww // k, k, k, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, hh, ww)
        return out[:, :, :h, :w]


class ConvFFN(nn.Module):
    """Feed-forward block: 1×1 expand → 3×3 depth-wise → 1×1 project (BN + GELU between)."""

    def __init__(self, dim: int, ratio: int):
        super().__init__()
        hidden = dim * ratio
        self.net = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), _bn(hidden), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), _bn(hidden), nn.GELU(),
            nn.Conv2d(hidden, dim, 1, bias=False), _bn(dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HRTBlock(nn.Module):
    """HRFormer block: x + Attn(LN(x)), then x + FFN(x)."""

    def __init__(self, dim: int, heads: int, window: int, ratio: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.ffn = ConvFFN(dim, ratio)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x + self.drop(self.attn(y))
        return x + self.drop(self.ffn(x))


class Fusion(nn.Module):
    """HRNet multi-resolution fusion: every output stream sums all inputs brought to its resolution."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.paths = nn.ModuleList()
        for i, wi in enumerate(widths):
            row = nn.ModuleList()
            for j, wj in enumerate(widths):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:  # lower resolution → 1×1 conv then upsample
                    row.append(nn.Sequential(nn.Conv2d(wj, wi, 1, bias=False), _bn(wi)))
                else:  # higher resolution → strided 3×3 convs
                    steps: list[nn.Module] = []
                    for s in range(i - j):
                        last = s == i - j - 1
                        cout = wi if last else wj
                        steps += [nn.Conv2d(wj, cout, 3, stride=2, padding=1, bias=False), _bn(cout)]
                        if not last:
                            steps.append(nn.ReLU(inplace=True))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, row in enumerate(self.paths):
            acc = xs[i]
            for j, path in enumerate(row):
                if j == i:
                    continue
                y = path(xs[j])
                if j > i:
                    y = F.interpolate(y, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                acc = acc + y
            out.append(F.relu(acc))
        return out


class HRModule(nn.Module):
    """One module of a stage: ``blocks`` HRFormer blocks per stream, then fusion."""

    def __init__(self, widths: list[int], heads: list[int], cfg: HRFormerConfig):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(HRTBlock(w, h, cfg.window, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.blocks)))
            for w, h in zip(widths, heads, strict=True)
        )
        self.fuse = Fusion(widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.fuse([b(x) for b, x in zip(self.branches, xs, strict=True)])


class HRFormer(nn.Module):
    """HRFormer segmentation network. ``encode`` gives the fused 1/4 features; ``forward`` the logits."""

    def __init__(self, cfg: HRFormerConfig = HRFormerConfig()):
        super().__init__()
        self.cfg = cfg
        sc = cfg.stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, sc, 3, stride=2, padding=1, bias=False), _bn(sc), nn.ReLU(inplace=True),
            nn.Conv2d(sc, sc, 3, stride=2, padding=1, bias=False), _bn(sc), nn.ReLU(inplace=True),
        )  # fmt: skip
        mid = sc
        self.stage1 = nn.Sequential(*(Bottleneck(sc if i == 0 else mid * 4, mid) for i in range(cfg.stage1_blocks)))
        w = list(cfg.widths)
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = [mid * 4]
        for s in range(3):  # stages 2, 3, 4 with 2, 3, 4 streams
            n = s + 2
            self.transitions.append(self._transition(prev, w[:n]))
            self.stages.append(nn.Sequential(*(HRModule(w[:n], list(cfg.heads[:n]), cfg) for _ in range(cfg.modules[s]))))
            prev = w[:n]
        hc = cfg.head_channels or sum(w)
        self.head = nn.Sequential(
            nn.Conv2d(sum(w), hc, 1, bias=False), _bn(hc), nn.ReLU(inplace=True), nn.Conv2d(hc, cfg.num_classes, 1)
        )
        self.features = sum(w)

    @staticmethod
    def _transition(prev: list[int], new: list[int]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, c in enumerate(new):
            if i < len(prev):
                same = prev[i] == c
                layers.append(nn.Identity() if same else nn.Sequential(
                    nn.Conv2d(prev[i], c, 3, padding=1, bias=False), _bn(c), nn.ReLU(inplace=True)))  # fmt: skip
            else:  # a new, coarser stream from the coarsest existing one
                layers.append(nn.Sequential(
                    nn.Conv2d(prev[-1], c, 3, stride=2, padding=1, bias=False), _bn(c), nn.ReLU(inplace=True)))  # fmt: skip
        return layers

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Fused features (N, sum(widths), H/4, W/4): every stream upsampled to 1/4 and concatenated."""
        xs = [self.stage1(self.stem(x))]
        for trans, stage in zip(self.transitions, self.stages, strict=True):
            xs = [t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(trans)]
            xs = stage(xs)
        size = xs[0].shape[-2:]
        return torch.cat([xs[0]] + [F.interpolate(y, size=size, mode="bilinear", align_corners=False) for y in xs[1:]], 1)

    def decode(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Class logits (N, classes, *size) from fused features."""
        return F.interpolate(self.head(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), (x.shape[-2], x.shape[-1]))
