-- Take one entry of an arq queue for this worker, in one round trip.
--
-- arq's worker takes an entry with a WATCH transaction (its in-progress
-- mark), reads it with a pipeline, and removes it when the job has ended:
-- five round trips. phaser's worker removes the entry as it takes it and
-- reads its payload in the same step: an entry in the queue is one no
-- worker has taken, so no mark is needed, and a job whose worker dies
-- before or while running it is recovered by phaser's maintenance (its
-- QUEUED check and its heartbeats), not by the entry.
--
-- KEYS[1] queue (sorted set)
-- KEYS[2] arq job key (the payload)
-- ARGV[1] arq job id
-- ARGV[2] now (ms)
--
-- Returns false if the entry is gone (taken by another worker) or not yet
-- due, else {score, payload} (payload false if it has expired).
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return false
end
redis.call("ZREM", KEYS[1], ARGV[1])
local payload = redis.call("GET", KEYS[2])
redis.call("DEL", KEYS[2])
return {score, payload}
