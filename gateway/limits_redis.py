"""Limit counters in Redis, shared by every hub process and host that names the same server and
prefix: one sorted set of event times per key, and a lock key, each changed by one Lua script so
that concurrent hubs cannot both slip under a limit."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis import asyncio as redis
from redis.exceptions import RedisError

log = structlog.get_logger("gateway.limits")

# KEYS[1] events; ARGV: now, window start, limit, member, ttl ms. -1: counted; else the oldest
# event's time (the caller works out the wait).
HIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return '-1'
"""

# KEYS[1] failures, KEYS[2] lock; ARGV: now, window start, limit, member, ttl ms, locked until,
# lock ttl ms.
FAIL = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
end
return 0
"""


def _ms(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() * 1000))


class RedisCounters:
    """Counters in Redis. If Redis cannot be reached, limits are not applied (and that is
    logged): a limit store outage must not stop citizens filing."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Any = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._hit = self._redis.register_script(HIT)
        self._fail = self._redis.register_script(FAIL)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}:{kind}:{key}"

    async def hit(self, key: str, now: datetime, limit: int, window: timedelta) -> float | None:
        at = now.timestamp()
        try:
            oldest = await self._hit(
                keys=[self._key("events", key)],
                args=[at, at - window.total_seconds(), limit, _member(at), _ms(window)],
            )
        except RedisError as exc:
            log.warning("limits.store_unavailable", error=str(exc))
            return None
        oldest = float(oldest)
        if oldest < 0:
            return None
        return oldest + window.total_seconds() - at

    async def fail(
        self, key: str, now: datetime, limit: int, window: timedelta, duration: timedelta
    ) -> None:
        at = now.timestamp()
        try:
            await self._fail(
                keys=[self._key("failures", key), self._key("locked", key)],
                args=[
                    at,
                    at - window.total_seconds(),
                    limit,
                    _member(at),
                    _ms(window),
                    (now + duration).timestamp(),
                    _ms(duration),
                ],
            )
        except RedisError as exc:
            log.warning("limits.store_unavailable", error=str(exc))

    async def locked_until(self, key: str, now: datetime) -> datetime | None:
        try:
            raw = await self._redis.get(self._key("locked", key))
        except RedisError as exc:
            log.warning("limits.store_unavailable", error=str(exc))
            return None
        if raw is None:
            return None
        until = datetime.fromtimestamp(float(raw), UTC)
        # The key expires by Redis's clock; the hub's (movable) clock decides too.
        return until if until > now else None

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._key("failures", key))
        except RedisError as exc:
            log.warning("limits.store_unavailable", error=str(exc))

    async def ping(self) -> None:
        """Raise if the store cannot be reached (for /ready)."""
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()


def _member(at: float) -> str:
    # Unique, so that two events at the same instant are two members of the set.
    return f"{at:.6f}:{secrets.token_hex(4)}"
