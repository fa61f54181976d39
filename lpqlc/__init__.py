"""lpqlc: quarterly land cover and RUSLE soil erosion from STAC archives (LP-QLC10), on Dask.

Public API: configuration (:func:`load_config`, :class:`PipelineConfig`), the :class:`Quarter` type,
the output grid (:class:`OutputGrid`), storage helpers and the error tree.
"""

from lpqlc.config import PipelineConfig, load_config
from lpqlc.errors import ConfigError, LpqlcError, SourceError, StackError, StorageError
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter, parse_quarters, quarter_range

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "LpqlcError",
    "OutputGrid",
    "PipelineConfig",
    "Quarter",
    "SourceError",
    "StackError",
    "StorageError",
    "__version__",
    "load_config",
    "parse_quarters",
    "quarter_range",
]
