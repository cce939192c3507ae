"""Building blocks every OneCity domain shares: errors, schemas, storage, crypto and keys.

``core`` sits below ``identity``, ``codes`` and ``services`` and imports none of them, nor
Litestar: it is plain Python over asyncpg, redis-py, msgspec and cryptography.
"""

__all__: list[str] = []
