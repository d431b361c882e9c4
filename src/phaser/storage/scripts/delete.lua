-- Remove a job record and every index and schedule entry of it.
--
-- KEYS[1] job record (hash)
-- KEYS[2] owner index
-- KEYS[3] owner task index
-- KEYS[4] owner phase index prefix (the phase name is appended)
-- KEYS[5] owner task-phase index prefix (the phase name is appended)
-- KEYS[6] destruction schedule
-- KEYS[7] deadline schedule
-- KEYS[8] heartbeat schedule
-- KEYS[9] queued schedule
-- ARGV[1] job id
-- ARGV[2] event channel
--
-- Returns the phase the job was in, or false if there was no such job.
local id = ARGV[1]
local phase = redis.call("HGET", KEYS[1], "phase")
if not phase then
  return false
end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], id)
redis.call("ZREM", KEYS[3], id)
redis.call("ZREM", KEYS[4] .. phase, id)
redis.call("ZREM", KEYS[5] .. phase, id)
redis.call("ZREM", KEYS[6], id)
redis.call("ZREM", KEYS[7], id)
redis.call("ZREM", KEYS[8], id)
redis.call("ZREM", KEYS[9], id)
redis.call("PUBLISH", ARGV[2],
  cjson.encode({id = id, phase = phase, kind = "deleted"}))
return phase
