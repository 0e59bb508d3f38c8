"""How a collection is laid out and talked to, taken from the settings in one place.

Both backends create their collection from the same ``Layout`` (on-disk storage, HNSW shape,
int8 quantization and its rescoring), so what the tests exercise on the embedded store is what
a server gets.  Sharding, replication and consistency only exist on a server, and only
``ServerStore`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.settings import Settings

# Quantized search reads this many times more candidates from the int8 copy, then rescores them
# with the full vectors: Qdrant's recommended setting for recall close to unquantized search.
QUANTIZATION_OVERSAMPLING = 2.0
QUANTILE = 0.99  # int8 range from the 99th percentile, so outliers do not squash the rest


@dataclass(frozen=True)
class Layout:
    hnsw_ef: int = 128
    on_disk: bool = False
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    quantization: str = "none"  # or "int8"
    # server only
    shards: int = 0  # 0 = the server's default
    replicas: int = 0  # 0 = 1 on a single node, 2 on a cluster
    write_consistency: int = 1
    read_consistency: str = ""  # "" = the server's default
    timeout_s: float = 10.0
    retries: int = 3
    upsert_batch: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(
            hnsw_ef=settings.tuning.search_hnsw_ef,
            on_disk=settings.qdrant_on_disk,
            hnsw_m=settings.tuning.qdrant_hnsw_m,
            hnsw_ef_construct=settings.tuning.qdrant_hnsw_ef_construct,
            quantization=settings.qdrant_quantization,
            shards=settings.qdrant_shards,
            replicas=settings.qdrant_replicas,
            write_consistency=settings.qdrant_write_consistency,
            read_consistency=settings.qdrant_read_consistency,
            timeout_s=settings.tuning.qdrant_timeout_s,
            retries=settings.tuning.qdrant_retries,
            upsert_batch=settings.tuning.qdrant_upsert_batch,
        )

    @property
    def quantized(self) -> bool:
        return self.quantization == "int8"

    def replication_for(self, nodes: int) -> int:
        """Copies of each shard on a server of ``nodes`` peers; one copy per shard on a cluster
        would lose data with any node, so that is refused."""
        replicas = self.replicas or (2 if nodes > 1 else 1)
        if nodes > 1 and replicas < 2:
            raise ValueError(f"S2R_QDRANT_REPLICAS={replicas} on a {nodes}-node cluster: every "
                             "shard would live on one node only; use 2 or more")
        return replicas


DEFAULT_LAYOUT = Layout()
