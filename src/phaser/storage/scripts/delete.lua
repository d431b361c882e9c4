-- Remove job records and every index and schedule entry of them, for one
-- job or a batch (maintenance destroys expired jobs a batch at a time).
--
-- KEYS[1] destruction schedule
-- KEYS[2] deadline schedule
-- KEYS[3] heartbeat schedule
-- KEYS[4] queued schedule
-- KEYS[5] start schedule (HELD jobs with a run_after time)
-- KEYS[6] dependency check schedule
-- KEYS[7] prefix of dependants sets (a job id is appended)
-- then six keys per job (base = 7 + 6 (i - 1)):
-- KEYS[base+1] job record (hash)
-- KEYS[base+2] owner index
-- KEYS[base+3] owner task-phase index prefix (the phase name is appended)
-- KEYS[base+4] owner phase counts (hash)
-- KEYS[base+5] owner run-id index prefix (the run id is appended)
-- KEYS[base+6] owner children index prefix (the parent id is appended)
-- ARGV[1] event channel
-- ARGV[2] the workers' channel (events.running_channel)
-- ARGV[2+i] id of the i-th job
--
-- Publishes one "deleted" event naming every job it deleted, repeated on
-- the workers' channel when one of them was running (EXECUTING or
-- SUSPENDED). Returns
-- {phases, dependants}: per job, the phase it was in ("" if there was no
-- such job); and the jobs that were waiting for a deleted one (their
-- dependants sets are removed: the caller tells them).
local parents = {}
local out = {}
local deleted = {}
local waiting = {}
local running = false
for i = 1, #ARGV - 2 do
  local id = ARGV[2 + i]
  local base = 7 + 6 * (i - 1)
  local state = redis.call(
    "HMGET", KEYS[base + 1], "phase", "run_id", "parent", "deps")
  local phase = state[1]
  if phase then
    redis.call("DEL", KEYS[base + 1])
    redis.call("ZREM", KEYS[base + 2], id)
    redis.call("ZREM", KEYS[base + 3] .. phase, id)
    redis.call("HINCRBY", KEYS[base + 4], phase, -1)
    if state[2] then
      redis.call("ZREM", KEYS[base + 5] .. state[2], id)
    end
    if state[3] then
      redis.call("ZREM", KEYS[base + 6] .. state[3], id)
      -- Its parent counts it no more (see transition.lua).
      local record = KEYS[base + 1]
      local parent = string.sub(record, 1, #record - #id) .. state[3]
      if redis.call("EXISTS", parent) == 1 then
        redis.call("HINCRBY", parent, "c" .. phase, -1)
        parents[state[3]] = parent
      end
    end
    if state[4] then
      for _, other in ipairs(redis.call("SMEMBERS", KEYS[7] .. id)) do
        table.insert(waiting, other)
      end
      redis.call("DEL", KEYS[7] .. id)
    end
    for s = 1, 6 do
      redis.call("ZREM", KEYS[s], id)
    end
    table.insert(deleted, id)
    running = running or phase == "EXECUTING" or phase == "SUSPENDED"
    out[i] = phase
  else
    out[i] = ""
  end
end
-- One event for the whole batch: every process parses every event, and a
-- thousand messages per batch cost the subscribers more than the deletion.
if #deleted > 0 then
  local event = cjson.encode({ids = deleted, kind = "deleted"})
  redis.call("PUBLISH", ARGV[1], event)
  if running then
    redis.call("PUBLISH", ARGV[2], event)
  end
end
-- One "children" event per parent whose counts changed.
for parent_id, parent in pairs(parents) do
  local state = redis.call("HMGET", parent, "phase", "owner")
  if state[1] then  -- not deleted later in this batch
    redis.call("PUBLISH", ARGV[1], cjson.encode({
      id = parent_id, phase = state[1], kind = "children",
      owner = state[2] or nil}))
  end
end
return {out, waiting}
