-- Takes or renews the LP leader's lease: one replica at a time solves and publishes the board.
-- KEYS: 1 lease; ARGV: 1 replica, 2 ttl ms. Returns 1 if this replica holds it.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
