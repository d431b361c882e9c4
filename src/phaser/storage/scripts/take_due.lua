-- Take due webhook deliveries: the ones whose time has come, at most a
-- number of them, each leased to the caller by moving its time to the
-- end of the lease (a deliverer that dies leaves it due again then).
--
-- KEYS[1] the outbox's due set (delivery ids scored by when they are due)
-- ARGV[1] now (ms)
-- ARGV[2] end of the lease (ms)
-- ARGV[3] most deliveries to take
--
-- Returns the delivery ids taken.
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1],
  "LIMIT", 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call("ZADD", KEYS[1], ARGV[2], id)
end
return ids
