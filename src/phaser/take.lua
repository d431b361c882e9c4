-- Take the first due entries of an arq queue for this worker, in one
-- round trip.
--
-- arq's worker reads the queue, then takes each entry with a WATCH
-- transaction (its in-progress mark), reads it with a pipeline, and
-- removes it when the job has ended: six round trips for one job.
-- phaser's worker takes as many entries as it has free slots, removing
-- them as it takes them and reading their payloads in the same step: an
-- entry in the queue is one no worker has taken, so no mark is needed,
-- and a job whose worker dies before or while running it is recovered by
-- phaser's maintenance (its QUEUED check and its heartbeats), not by the
-- entry.
--
-- The payload keys are arq's (prefix + entry name), read here without
-- being declared: arq's queue layout is not made for Redis Cluster
-- either, and phaser runs on one Redis (with Sentinel for failover).
--
-- KEYS[1] queue (sorted set; the score is when the entry is due, with
--         its priority folded in)
-- ARGV[1] now (ms)
-- ARGV[2] how many entries at most
-- ARGV[3] arq's payload key prefix
--
-- Returns {name, score, payload, name, score, payload, ...}, first due
-- first; a payload is false if it has expired.
local due = redis.call(
  "ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, ARGV[2]
)
local taken = {}
for i = 1, #due, 2 do
  local name = due[i]
  local key = ARGV[3] .. name
  redis.call("ZREM", KEYS[1], name)
  taken[#taken + 1] = name
  taken[#taken + 1] = due[i + 1]
  taken[#taken + 1] = redis.call("GET", key)
  redis.call("DEL", key)
end
return taken
