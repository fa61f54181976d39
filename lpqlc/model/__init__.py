"""The CCTS land-cover model: HRFormer network, losses, perturbations, checkpoints."""

from lpqlc.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lpqlc.model.hrformer import HRFORMER_SIZES, HRFormer, HRFormerConfig, hrformer_config
from lpqlc.model.losses import info_nce, intra_loss, masked_consistency
from lpqlc.model.perturb import Perturb, perturb

__all__ = [
    "HRFormer",
    "HRFormerConfig",
    "HRFORMER_SIZES",
    "hrformer_config",
    "info_nce",
    "masked_consistency",
    "intra_loss",
    "Perturb",
    "perturb",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
]
