-- Reserves engine-seconds on a pool if the live replicas' total stays within its room (work 0:
-- only reads the totals). Replicas whose presence lapsed are dropped with their reservations:
-- that is how a dead replica's capacity comes back.
-- KEYS: 1 replicas, 2 in flight (hash replica -> micro-engine-seconds), 3 prefill backlog (hash)
-- ARGV: 1 replica, 2 work, 3 prefill, 4 room
-- Returns {granted 0/1, total in flight, this replica's, total backlog, this replica's}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function sum(key)
  local total, own = 0, 0
  local h = redis.call('HGETALL', key)
  for i = 1, #h, 2 do
    local exp = redis.call('ZSCORE', KEYS[1], h[i])
    if exp and tonumber(exp) > now_ms then
      total = total + tonumber(h[i + 1])
      if h[i] == ARGV[1] then own = tonumber(h[i + 1]) end
    else
      redis.call('HDEL', key, h[i])
    end
  end
  return total, own
end
local total, own = sum(KEYS[2])
local backlog, own_backlog = sum(KEYS[3])
local work, prefill = tonumber(ARGV[2]), tonumber(ARGV[3])
if work == 0 then return {1, total, own, backlog, own_backlog} end
if total + work > tonumber(ARGV[4]) then return {0, total, own, backlog, own_backlog} end
redis.call('HINCRBY', KEYS[2], ARGV[1], work)
if prefill > 0 then redis.call('HINCRBY', KEYS[3], ARGV[1], prefill) end
return {1, total + work, own + work, backlog + prefill, own_backlog + prefill}
