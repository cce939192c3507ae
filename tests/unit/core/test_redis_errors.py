"""Which Redis errors mean "retry later" (503) rather than a bug (500)."""

from __future__ import annotations

import pytest
from redis import exceptions

from core.redis import bucket_of, is_unavailable


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        exceptions.MovedError("3999 127.0.0.1:7001"),
        exceptions.AskError("3999 127.0.0.1:7001"),
        exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
        exceptions.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),
        exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:7001"),
        exceptions.TimeoutError("Timeout reading from socket"),
        exceptions.RedisClusterException("Redis Cluster cannot be connected"),
        exceptions.CrossSlotTransactionError("All keys involved in a cluster transaction must map to the same slot"),
    ],
)
def test_cluster_outages_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        exceptions.DataError("Invalid input"),
        ValueError("x"),
    ],
)
def test_other_errors_are_bugs(error: Exception) -> None:
    assert not is_unavailable(error)


def test_buckets_match_postgresql_and_spread() -> None:
    # get_byte(sha256(convert_to('abc', 'UTF8')), 0) % 16 = 0xba % 16 = 10
    assert bucket_of("abc") == 10
    assert len({bucket_of(str(i)) for i in range(500)}) == 16
