"""The model cache shared by every pipeline; see model_cache.py for how its parts fit together."""

from studio.core.cache.base_model import BaseModel
from studio.core.cache.lease import Lease
from studio.core.cache.model_cache import CacheStats, ModelCache
from studio.core.cache.placement import free_memory
from studio.core.cache.registry import CacheEntry, CacheKey, module_bytes

__all__ = [
    "BaseModel",
    "CacheEntry",
    "CacheKey",
    "CacheStats",
    "Lease",
    "ModelCache",
    "free_memory",
    "module_bytes",
]
