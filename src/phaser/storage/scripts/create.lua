-- Store a new job with its index and schedule entries, within the owner's
-- quotas. The quota check and the write are one atomic step, so concurrent
-- requests of one owner cannot overshoot a limit.
--
-- KEYS[1] job record (hash)
-- KEYS[2] owner index
-- KEYS[3] owner task-phase index prefix (the phase name is appended)
-- KEYS[4] owner phase counts (hash)
-- KEYS[5] owner tasks (set)
-- KEYS[6] destruction schedule
-- KEYS[7] queued schedule
-- KEYS[8] owner run-id index prefix (the run id is appended)
-- KEYS[9] set of every owner (names; the anonymous owner is not in it)
-- KEYS[10] the owner's idempotency key ("job id fingerprint"), or "" for
--          a creation without one
-- KEYS[11] start schedule (a HELD job with a "runat" field goes in it)
-- KEYS[12] prefix of dependants sets (a job id is appended: the jobs
--          waiting for it)
-- KEYS[13] owner children index prefix (the parent's id is appended)
-- KEYS[14] dependency check schedule (jobs waiting for others, scored by
--          when they were last checked)
-- KEYS[15 .. 17] for a job started at creation, its first attempt's queue
--          entry's keys as enqueue.lua takes them (arq's job key, its
--          result key, the queue), or "" for none
-- ARGV[1] job id
-- ARGV[2] task
-- ARGV[3] phase (PENDING, or QUEUED for a job started at creation)
-- ARGV[4] destruction score (ms since the epoch), or ""
-- ARGV[5] most stored jobs of the owner, or "" for no limit
-- ARGV[6] most active jobs of the owner, or "" for no limit
-- ARGV[7] number A of active phases that follow
-- ARGV[8 .. 7+A] the active phases
-- ARGV[8+A] run id, or "" for none
-- ARGV[9+A] owner name, or "" for the anonymous owner
-- ARGV[10+A] the request's fingerprint (with KEYS[10])
-- ARGV[11+A] how long the idempotency key is kept (ms)
-- ARGV[12+A] job record key prefix (the job id is appended)
-- ARGV[13+A] channel of "created" events (read only by processes with live
--           views open: see events.created_channel)
-- ARGV[14+A] the "created" event (JSON), published once stored
-- ARGV[15+A] the record's fields and values, as one JSON object (one
--           argument instead of two a field: packing arguments was a
--           sixth of a creation's time in the frontend, B1)
-- ARGV[16+A .. 20+A] with KEYS[15 .. 17]: the entry's arguments as
--           enqueue.lua takes them (arq's job id, the payload, the score,
--           the payload's expiry in ms, the wake-up channel)
--
-- Returns {"ok"}, {"exists", job id, fingerprint} (the idempotency key
-- names a job that is still stored), {"stored", count} or
-- {"active", count}; on anything but "ok" nothing was written.
local id = ARGV[1]
local nactive = tonumber(ARGV[7])
if KEYS[10] ~= "" then
  local earlier = redis.call("GET", KEYS[10])
  if earlier then
    local job, fingerprint = string.match(earlier, "^(%S+) (%S+)$")
    if job and redis.call("EXISTS", ARGV[12 + nactive] .. job) == 1 then
      return {"exists", job, fingerprint}
    end
  end
end
if ARGV[5] ~= "" then
  local stored = redis.call("ZCARD", KEYS[2])
  if stored >= tonumber(ARGV[5]) then
    return {"stored", stored}
  end
end
if ARGV[6] ~= "" then
  local active = 0
  for i = 8, 7 + nactive do
    active = active + (tonumber(redis.call("HGET", KEYS[4], ARGV[i])) or 0)
  end
  if active >= tonumber(ARGV[6]) then
    return {"active", active}
  end
end

local phase = ARGV[3]
for name, value in pairs(cjson.decode(ARGV[15 + nactive])) do
  redis.call("HSET", KEYS[1], name, value)
end
local run = ARGV[8 + nactive]
if run ~= "" then
  redis.call("ZADD", KEYS[8] .. run, 0, id)
end
redis.call("ZADD", KEYS[2], 0, id)
redis.call("ZADD", KEYS[3] .. phase, 0, id)
redis.call("HINCRBY", KEYS[4], phase, 1)
redis.call("SADD", KEYS[5], ARGV[2])
if ARGV[4] ~= "" then
  redis.call("ZADD", KEYS[6], tonumber(ARGV[4]), id)
end
if phase == "HELD" then
  local runat = redis.call("HGET", KEYS[1], "runat")
  if runat then
    redis.call("ZADD", KEYS[11], tonumber(runat), id)
  end
end
if phase == "QUEUED" then
  local time = redis.call("TIME")
  local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call("ZADD", KEYS[7], ms, id)
end
-- A job waiting for others ("after") is named in each one's dependants
-- (and the other job learns it has some), so whoever ends it tells this
-- one; one already gone is left out (the caller checks the job's
-- dependencies once stored, and finds it gone).
local records = ARGV[12 + nactive]
local after = redis.call("HGET", KEYS[1], "after")
if after then
  for _, other in ipairs(cjson.decode(after)) do
    if redis.call("EXISTS", records .. other) == 1 then
      redis.call("SADD", KEYS[12] .. other, id)
      redis.call("HSET", records .. other, "deps", "1")
    end
  end
  local time = redis.call("TIME")
  redis.call("ZADD", KEYS[14], tonumber(time[1]) * 1000, id)
end
local parent = redis.call("HGET", KEYS[1], "parent")
if parent then
  redis.call("ZADD", KEYS[13] .. parent, 0, id)
  if redis.call("EXISTS", records .. parent) == 1 then
    -- Counted by phase on the parent's record (see transition.lua).
    redis.call("HSET", records .. parent, "kids", "1")
    redis.call("HINCRBY", records .. parent, "c" .. phase, 1)
  end
end
if ARGV[9 + nactive] ~= "" then
  redis.call("SADD", KEYS[9], ARGV[9 + nactive])
end
if KEYS[10] ~= "" then
  redis.call(
    "SET", KEYS[10], id .. " " .. ARGV[10 + nactive],
    "PX", tonumber(ARGV[11 + nactive])
  )
end
redis.call("PUBLISH", ARGV[13 + nactive], ARGV[14 + nactive])
if KEYS[15] ~= "" then
  -- Queued in the same step (what enqueue.lua does, but for its check
  -- that the entry is new: the job is): one round trip less for a job
  -- started at creation, and no QUEUED job without its entry.
  redis.call("SET", KEYS[15], ARGV[17 + nactive],
    "PX", tonumber(ARGV[19 + nactive]))
  redis.call("ZADD", KEYS[17], tonumber(ARGV[18 + nactive]), ARGV[16 + nactive])
  redis.call("PUBLISH", ARGV[20 + nactive], ARGV[16 + nactive])
end
return {"ok"}
