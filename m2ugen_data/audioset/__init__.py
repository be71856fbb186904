"""AudioSet ingestion: ontology, segment lists, disjoint music pools, and resumable clip downloads."""

from m2ugen_data.audioset.ontology import Ontology, load_ontology

__all__ = ["Ontology", "load_ontology"]
