-- The demand forecasts published by live replicas (the leader sums them before solving).
-- KEYS: 1 replicas, 2 forecasts (hash replica -> JSON)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local h = redis.call('HGETALL', KEYS[2])
for i = 1, #h, 2 do
  local exp = redis.call('ZSCORE', KEYS[1], h[i])
  if exp and tonumber(exp) > now_ms then
    out[#out + 1] = h[i + 1]
  else
    redis.call('HDEL', KEYS[2], h[i])
  end
end
return out
