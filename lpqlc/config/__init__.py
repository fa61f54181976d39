"""Pipeline configuration: pydantic models of a pipeline YAML, with every science constant's default."""

from lpqlc.config.pipeline import (
    CHINA_ALBERS,
    GLANCE_ASIA,
    AOIConfig,
    ClusterConfig,
    CollectionsConfig,
    GridConfig,
    ModelConfig,
    PeriodConfig,
    PipelineConfig,
    PublishConfig,
    SourcesConfig,
    StorageConfig,
    config_from_dict,
    load_config,
)
from lpqlc.config.science import WORLDCOVER_CLASSES, WORLDCOVER_COLOURS, ScienceConfig

__all__ = [
    "CHINA_ALBERS",
    "GLANCE_ASIA",
    "AOIConfig",
    "ClusterConfig",
    "CollectionsConfig",
    "GridConfig",
    "PeriodConfig",
    "ModelConfig",
    "PipelineConfig",
    "PublishConfig",
    "ScienceConfig",
    "SourcesConfig",
    "StorageConfig",
    "WORLDCOVER_CLASSES",
    "WORLDCOVER_COLOURS",
    "config_from_dict",
    "load_config",
]
