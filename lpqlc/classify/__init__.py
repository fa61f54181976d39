"""Land-cover classification: chunk-wise inference on Dask and temporal refinement."""

from lpqlc.classify.inference import ModelPlugin, classify_array, get_model, predict_blocks
from lpqlc.classify.temporal import refine_window, temporal_mode, temporal_mode_numpy

__all__ = ["ModelPlugin", "classify_array", "get_model", "predict_blocks", "temporal_mode", "temporal_mode_numpy",
           "refine_window"]
