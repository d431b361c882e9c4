-- Move a waiting arq entry to its place for a new priority: its score is
-- its enqueue time (from arq's payload, JSON here) minus the priority
-- times the step between levels (see phaser.queue). An entry that is not
-- in the queue (not sent yet, or done) is left alone.
--
-- KEYS[1] arq job key (the payload)
-- KEYS[2] queue (sorted set)
-- ARGV[1] arq job id
-- ARGV[2] priority
-- ARGV[3] step between priorities (ms)
--
-- Returns 1 if the entry moved, 0 if there was none.
local payload = redis.call("GET", KEYS[1])
if not payload then
  return 0
end
local enqueued = tonumber(cjson.decode(payload)["et"])
local score = enqueued - tonumber(ARGV[2]) * tonumber(ARGV[3])
return redis.call("ZADD", KEYS[2], "XX", "CH",
  string.format("%.0f", score), ARGV[1])
