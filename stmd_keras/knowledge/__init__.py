"""Spatial and temporal knowledge: features -> graphs, relations, losses."""

from stmd_keras.knowledge.losses import GRAPH_DISTANCES
from stmd_keras.knowledge.losses import graph_distance
from stmd_keras.knowledge.losses import spatial_loss
from stmd_keras.knowledge.losses import spatial_mmd
from stmd_keras.knowledge.losses import spatial_wasserstein
from stmd_keras.knowledge.losses import temporal_loss
from stmd_keras.knowledge.sleep_graph import SleepGraph
from stmd_keras.knowledge.temporal_relation import TemporalRelation

__all__ = [
    "GRAPH_DISTANCES",
    "SleepGraph",
    "TemporalRelation",
    "graph_distance",
    "spatial_loss",
    "spatial_mmd",
    "spatial_wasserstein",
    "temporal_loss",
]
