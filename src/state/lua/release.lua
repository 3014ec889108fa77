-- Gives back a replica's engine-seconds in flight and prefill backlog (never below zero).
-- KEYS: 1 in flight, 2 backlog; ARGV: 1 replica, 2 work, 3 prefill
local function take(key, n)
  if n > 0 and redis.call('HEXISTS', key, ARGV[1]) == 1 then
    if redis.call('HINCRBY', key, ARGV[1], -n) <= 0 then redis.call('HDEL', key, ARGV[1]) end
  end
end
take(KEYS[1], tonumber(ARGV[2]))
take(KEYS[2], tonumber(ARGV[3]))
return 1
