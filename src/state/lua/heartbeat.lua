-- Renews this replica's presence until now + ttl, and forgets replicas gone for ten minutes.
-- KEYS: 1 replicas; ARGV: 1 replica, 2 ttl ms
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - 600000)
return now_ms
