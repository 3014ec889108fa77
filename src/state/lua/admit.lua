-- Admits one request for a tenant, atomically: its budget hold, and its place in the tenant's
-- token and request windows (one-second buckets of a sliding minute). One round trip.
-- KEYS: 1 replicas (zset replica -> expiry ms), 2 budget (hash: spent), 3 held (hash replica ->
--       micro-USD), 4 tokens window (hash second -> tokens), 5 requests window
-- ARGV: 1 replica, 2 hold (micro-USD), 3 budget limit (micro-USD, -1: none), 4 spent this month
--       according to this replica's ledger (micro-USD; seeds the budget if Redis has none),
--       5 tokens, 6 tokens per minute (-1: none), 7 requests per minute (-1: none)
-- Returns {1, second, spent + held} or {0, reason, retry_after_s (-1: never), spent + held}
-- (spent + held: micro-USD of the month, before this request; 0 without a budget).
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now_ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local committed = 0

if limit >= 0 then
  if redis.call('HSETNX', KEYS[2], 'spent', ARGV[4]) == 1 then
    redis.call('EXPIRE', KEYS[2], 3456000)
  end
  local spent = tonumber(redis.call('HGET', KEYS[2], 'spent'))
  local held = 0
  local h = redis.call('HGETALL', KEYS[3])
  for i = 1, #h, 2 do
    local exp = redis.call('ZSCORE', KEYS[1], h[i])
    if exp and tonumber(exp) > now_ms then
      held = held + tonumber(h[i + 1])
    else
      redis.call('HDEL', KEYS[3], h[i])
    end
  end
  committed = spent + held
  if committed + hold > limit then
    return {0, 'budget', -1, committed}
  end
end

-- Sums a window's live buckets (dropping the old); returns the sum and the buckets by second.
local function window(key)
  local sum, live = 0, {}
  local h = redis.call('HGETALL', key)
  for i = 1, #h, 2 do
    local s, n = tonumber(h[i]), tonumber(h[i + 1])
    if s <= sec - 60 then
      redis.call('HDEL', key, h[i])
    else
      sum = sum + n
      live[#live + 1] = {s, n}
    end
  end
  return sum, live
end

-- Seconds until `n` more fit under `cap`, -1 if never.
local function wait(sum, live, n, cap)
  if n > cap then return -1 end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  for _, b in ipairs(live) do
    sum = sum - b[2]
    if sum + n <= cap then return math.max(1, b[1] + 60 - sec) end
  end
  return 60
end

local tokens, tpm, rpm = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if tpm >= 0 then
  local sum, live = window(KEYS[4])
  if sum + tokens > tpm then return {0, 'tokens', wait(sum, live, tokens, tpm), committed} end
end
if rpm >= 0 then
  local sum, live = window(KEYS[5])
  if sum + 1 > rpm then return {0, 'requests', wait(sum, live, 1, rpm), committed} end
end

if limit >= 0 and hold > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[1], hold)
  redis.call('EXPIRE', KEYS[3], 3456000)
end
if tpm >= 0 then
  redis.call('HINCRBY', KEYS[4], sec, tokens)
  redis.call('EXPIRE', KEYS[4], 120)
end
if rpm >= 0 then
  redis.call('HINCRBY', KEYS[5], sec, 1)
  redis.call('EXPIRE', KEYS[5], 120)
end
return {1, sec, committed}
