-- Settles a tenant's admitted request: its hold leaves the replica's held total, the real charge
-- joins the month's spend, and the tokens counted at admission are corrected to the real ones.
-- KEYS: 1 budget, 2 held, 3 tokens window
-- ARGV: 1 member (replica.epoch the hold was made under), 2 hold (micro-USD; 0: no budget), 3 charge (micro-USD), 4 admission second,
--       5 tokens delta (real minus counted)
local hold = tonumber(ARGV[2])
-- Only from a field that still exists: a replica whose presence lapsed had its holds dropped.
if hold > 0 and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  local left = redis.call('HINCRBY', KEYS[2], ARGV[1], -hold)
  if left <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
end
local charge = tonumber(ARGV[3])
if charge ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'spent', charge)
end
local d = tonumber(ARGV[5])
if d ~= 0 and redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then
  local left = redis.call('HINCRBY', KEYS[3], ARGV[4], d)
  if left < 0 then redis.call('HSET', KEYS[3], ARGV[4], 0) end
end
return 1
