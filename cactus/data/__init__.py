"""Data formats: entity files, entity-set files and dataset folders, all validated at load."""

from cactus.data.entities import LabelledEntity, LoadedEntities, read_entities
from cactus.data.errors import DataError, SkippedLine
from cactus.data.sets import (
    SPLITS,
    Dataset,
    Entity,
    EntitySet,
    LoadedSets,
    clusters_to_labels,
    labels_to_clusters,
    read_dataset,
    read_sets,
    write_dataset,
    write_sets,
)

__all__ = [
    "SPLITS",
    "DataError",
    "Dataset",
    "Entity",
    "EntitySet",
    "LabelledEntity",
    "LoadedEntities",
    "LoadedSets",
    "SkippedLine",
    "clusters_to_labels",
    "labels_to_clusters",
    "read_dataset",
    "read_entities",
    "read_sets",
    "write_dataset",
    "write_sets",
]
