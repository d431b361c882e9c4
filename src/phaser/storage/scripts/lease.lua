-- Take or renew a lease: set KEYS[1] to ARGV[1] for ARGV[2] ms if it is
-- free or already ours. Returns 1 if we hold the lease now, else 0.
local holder = redis.call("GET", KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", tonumber(ARGV[2]))
  return 1
end
return 0
