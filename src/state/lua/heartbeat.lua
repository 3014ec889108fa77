-- Renews this replica's presence until now + ttl, and forgets replicas gone for ten minutes.
-- KEYS: 1 replicas; ARGV: 1 member (replica.epoch), 2 ttl ms, 3 1 if this member was present
-- before (then a lapsed presence is reported instead of renewed).
-- Returns {now_ms, lapsed 0/1}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not exp or tonumber(exp) <= now_ms then
    redis.call('ZREM', KEYS[1], ARGV[1])
    return {now_ms, 1}
  end
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - 600000)
return {now_ms, 0}
