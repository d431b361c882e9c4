-- One named transition of one job record (see job_store.JobStore): a
-- compare-and-set on the phase and, optionally, one guard field, that
-- moves the job's index entries and counts, derives its schedule entries
-- from the fields it writes, appends to its history and publishes an
-- event, in one atomic step.
--
-- KEYS[1] job record (hash)
-- KEYS[2] owner phase counts (hash)
-- KEYS[3] owner task-phase index prefix (the phase name is appended)
-- KEYS[4] destruction schedule
-- KEYS[5] deadline schedule
-- KEYS[6] heartbeat schedule
-- KEYS[7] queued schedule
-- KEYS[8] owner run-id index prefix (the run id is appended)
-- KEYS[9] start schedule (HELD jobs with a run_after time)
-- KEYS[10] prefix of the concurrency-limit keys (see admit.lua)
-- KEYS[11] prefix of the webhook outbox (see keys.webhook_prefix)
-- KEYS[12] prefix of the per-minute throughput counters
--          (keys.throughput_prefix; the kind and the minute are appended)
-- ARGV[1] job id
-- ARGV[2] allowed current phases, as ",A,B,"
-- ARGV[3] new phase, or "" to keep the phase
-- ARGV[4] guard: a field that must hold ARGV[5] (claim, attempts, beat),
--         "!" and a field that must be absent (noabort), or ""
-- ARGV[5] the value it must hold
-- ARGV[6] event channel
-- ARGV[7] event kind ("phase", "progress", "update"), "" for no event
-- ARGV[8] the workers' channel (events.running_channel), on which the
--         event of a job that was EXECUTING or SUSPENDED is repeated; ""
--         for a change the job's own worker makes (it need not hear of it)
-- ARGV[9] number N of field/value pairs that follow
-- ARGV[10 .. 9+2N] fields and values to set; the rest: fields to delete
--
-- Schedules follow the record: the destruction schedule holds the
-- "destroy" field (but for ARCHIVED jobs, which are not destroyed
-- again); entering EXECUTING puts the job in the deadline
-- schedule at "started" + "duration" seconds (no entry for a duration of
-- 0, unlimited) and writing "beat" while EXECUTING or SUSPENDED in the
-- heartbeat schedule; leaving those drops both. Entering QUEUED records the
-- time in the queued schedule, leaving it drops it, so maintenance can
-- find queued jobs whose queue entry was lost. A HELD job is in the start
-- schedule at its "runat" field while it has one; leaving HELD drops it.
--
-- A job with concurrency limits ("limits" field) may be claimed only while
-- admitted (a member of each of its groups' running sets; admit.lua), and
-- leaves those sets (and any waiting set) when it leaves QUEUED, EXECUTING
-- or SUSPENDED; the caller then admits the jobs waiting for the room.
--
-- A change of phase is appended to the record's history: the phase's
-- letter and the milliseconds since creation in base 36 (see
-- history.history_text); a history grown past 200 characters keeps its
-- first change, a "~" and the latest changes.
--
-- A child's change of phase also changes its parent's counts of its
-- children by phase (and publishes a "children" event of the parent).
--
-- A job taken from QUEUED to EXECUTING counts as started in the current
-- minute's counter, one entering a final phase as finished: counted by the
-- change itself, so exactly once, with no round trip of its own.
--
-- Leaving EXECUTING or SUSPENDED drops the task's "noabort"; entering a
-- final phase with a "retain" field brings the destruction time forward
-- to that many seconds from now.
--
-- The event of a job's end carries its record (see events.JobEvent).
--
-- Returns {"ok", old phase, the record as HGETALL gives it}, {"missing"},
-- {"phase", current phase} or {"check", current phase[, the field that
-- was not to be there]}. On anything but
-- "ok" nothing was written.
local key = KEYS[1]
local current = redis.call("HGET", key, "phase")
if not current then
  return {"missing"}
end
if not string.find(ARGV[2], "," .. current .. ",", 1, true) then
  return {"phase", current}
end
if ARGV[4] ~= "" then
  if string.sub(ARGV[4], 1, 1) == "!" then
    -- The field must be absent (a task's "may not be aborted now").
    local held = redis.call("HGET", key, string.sub(ARGV[4], 2))
    if held then
      return {"check", current, held}
    end
  elseif redis.call("HGET", key, ARGV[4]) ~= ARGV[5] then
    return {"check", current}
  end
end
local limits = redis.call("HGET", key, "limits")
if limits then
  limits = cjson.decode(limits)
end
if limits and current == "QUEUED" and ARGV[3] == "EXECUTING" then
  for group in pairs(limits) do
    if redis.call("SISMEMBER", KEYS[10] .. "run:" .. group, ARGV[1]) == 0 then
      return {"check", current}
    end
  end
end

local LETTER = {
  PENDING = "P", QUEUED = "Q", EXECUTING = "E", COMPLETED = "C", ERROR = "R",
  ABORTED = "A", UNKNOWN = "U", HELD = "H", SUSPENDED = "S", ARCHIVED = "V",
}

local function base36(n)
  local digits = "0123456789abcdefghijklmnopqrstuvwxyz"
  local text = ""
  repeat
    local digit = n % 36
    text = string.sub(digits, digit + 1, digit + 1) .. text
    n = math.floor(n / 36)
  until n == 0
  return text
end

local function remember(phase)
  local created = tonumber(redis.call("HGET", key, "created"))
  if not created or not LETTER[phase] then
    return
  end
  local time = redis.call("TIME")
  local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local history = (redis.call("HGET", key, "history") or "")
    .. LETTER[phase] .. base36(math.max(ms - created, 0))
  if #history > 200 then
    local second = string.find(history, "[A-Z]", 2) or 2
    local tail = string.find(history, "[A-Z]", #history - 150) or #history
    history = string.sub(history, 1, second - 1) .. "~"
      .. string.sub(history, tail)
  end
  redis.call("HSET", key, "history", history)
end

local id = ARGV[1]
local new = ARGV[3]
if new ~= "" and new ~= current then
  remember(new)
  redis.call("HINCRBY", KEYS[2], current, -1)
  redis.call("HINCRBY", KEYS[2], new, 1)
  redis.call("ZREM", KEYS[3] .. current, id)
  redis.call("ZADD", KEYS[3] .. new, 0, id)
  redis.call("HSET", key, "phase", new)
else
  new = current
end

-- A child's change of phase moves it between its parent's counts ("c"
-- and the phase, on the parent's record; see values.CHILD_FIELD),
-- in this same step, so the counts are exact; a parent already gone
-- keeps none (no record is made again by counting).
local parent_key, parent_id = nil, nil
if new ~= current then
  parent_id = redis.call("HGET", key, "parent")
  if parent_id then
    parent_key = string.sub(key, 1, #key - #id) .. parent_id
    if redis.call("EXISTS", parent_key) == 1 then
      redis.call("HINCRBY", parent_key, "c" .. current, -1)
      redis.call("HINCRBY", parent_key, "c" .. new, 1)
    else
      parent_key = nil
    end
  end
end

local written = {}
local npairs = tonumber(ARGV[9])
local last = 9 + 2 * npairs
for i = 10, last, 2 do
  if ARGV[i] == "run_id" then
    -- A new run id moves the job between run-id indexes.
    local old = redis.call("HGET", key, "run_id")
    if old then
      redis.call("ZREM", KEYS[8] .. old, id)
    end
    redis.call("ZADD", KEYS[8] .. ARGV[i + 1], 0, id)
  end
  redis.call("HSET", key, ARGV[i], ARGV[i + 1])
  written[ARGV[i]] = ARGV[i + 1]
end
for i = last + 1, #ARGV do
  redis.call("HDEL", key, ARGV[i])
  if ARGV[i] == "destroy" then
    redis.call("ZREM", KEYS[4], id)
  end
end

if new == "ARCHIVED" then
  -- An archived job keeps its destruction time as a record of when it
  -- happened, and is not destroyed again.
  redis.call("ZREM", KEYS[4], id)
elseif written["destroy"] then
  redis.call("ZADD", KEYS[4], tonumber(written["destroy"]), id)
end
-- Suspended time does not count against the execution duration: the
-- moment of suspension is kept ("suspat") and, on resumption, the time
-- suspended is added up ("paused", ms), which pushes the deadline back.
local CLAIMED = {EXECUTING = true, SUSPENDED = true}
if new == "SUSPENDED" and current ~= "SUSPENDED" then
  local time = redis.call("TIME")
  redis.call("HSET", key, "suspat",
    tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
  redis.call("ZREM", KEYS[5], id)
elseif current == "SUSPENDED" and new ~= "SUSPENDED" then
  local since = tonumber(redis.call("HGET", key, "suspat"))
  if since then
    local time = redis.call("TIME")
    local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    redis.call("HINCRBY", key, "paused", math.max(ms - since, 0))
    redis.call("HDEL", key, "suspat")
  end
end
if current == "QUEUED" and new == "EXECUTING" then
  redis.call("HDEL", key, "paused")  -- a new attempt's own clock
end
if new == "EXECUTING" and current ~= "EXECUTING" then
  local started = tonumber(redis.call("HGET", key, "started"))
  local duration = tonumber(redis.call("HGET", key, "duration")) or 0
  local paused = tonumber(redis.call("HGET", key, "paused")) or 0
  if started and duration > 0 then
    redis.call("ZADD", KEYS[5], started + duration * 1000 + paused, id)
  end
end
if CLAIMED[new] then
  if written["beat"] then
    redis.call("ZADD", KEYS[6], tonumber(written["beat"]), id)
  end
elseif CLAIMED[current] then
  redis.call("ZREM", KEYS[5], id)
  redis.call("ZREM", KEYS[6], id)
  redis.call("HDEL", key, "noabort")  -- the attempt's own say
end
-- A job that asked to be kept a while after its end ("retain", seconds)
-- is destroyed then, if that is sooner than its destruction time.
local ENDS = {COMPLETED = true, ERROR = true, ABORTED = true}
if ENDS[new] and not ENDS[current] then
  local retain = tonumber(redis.call("HGET", key, "retain"))
  if retain then
    local time = redis.call("TIME")
    local at = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
      + retain * 1000
    local destroy = tonumber(redis.call("HGET", key, "destroy"))
    if not destroy or at < destroy then
      redis.call("HSET", key, "destroy", at)
      redis.call("ZADD", KEYS[4], at, id)
    end
  end
end
if new == "HELD" then
  local runat = redis.call("HGET", key, "runat")
  if runat then
    redis.call("ZADD", KEYS[9], tonumber(runat), id)
  else
    redis.call("ZREM", KEYS[9], id)
  end
elseif current == "HELD" then
  redis.call("ZREM", KEYS[9], id)
end
if new == "QUEUED" and current ~= "QUEUED" then
  local time = redis.call("TIME")
  local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call("ZADD", KEYS[7], ms, id)
elseif current == "QUEUED" and new ~= "QUEUED" then
  redis.call("ZREM", KEYS[7], id)
end

local ADMITTED = {QUEUED = true, EXECUTING = true, SUSPENDED = true}
if limits and ADMITTED[current] and not ADMITTED[new] then
  for group in pairs(limits) do
    redis.call("SREM", KEYS[10] .. "run:" .. group, id)
    redis.call("ZREM", KEYS[10] .. "wait:" .. group, id)
  end
end

-- A job with a webhook ("notify": {url, events}) gets a delivery in the
-- outbox for each event it asked for, in the same step as the change,
-- so none is lost whatever fails after: "final" when it enters a final
-- phase, "phase" on every change of phase, "progress" on progress.
-- So do the owner's standing subscriptions ("subs:" + owner: id -> {url,
-- events, task}) whose task filter the job passes.
local FINAL = {COMPLETED = true, ERROR = true, ABORTED = true}
-- Bytes of fields and values a record may have to travel in its end's
-- event (events.JobEvent.record).
local RECORD_IN_EVENT = 16384
local function tally(kind)
  local time = redis.call("TIME")
  local counter = KEYS[12] .. kind .. ":" .. math.floor(tonumber(time[1]) / 60)
  redis.call("INCR", counter)
  redis.call("EXPIRE", counter, 7200)
end
if current == "QUEUED" and new == "EXECUTING" then
  tally("started")
elseif FINAL[new] and not FINAL[current] then
  tally("finished")
end

local function due_events(events)
  local asked = {}
  for _, event in ipairs(events) do
    asked[event] = true
  end
  local due = {}
  if ARGV[7] == "phase" and new ~= current then
    if asked["final"] and FINAL[new] and not FINAL[current] then
      table.insert(due, "final")
    end
    if asked["phase"] then
      table.insert(due, "phase")
    end
  elseif ARGV[7] == "progress" and asked["progress"] then
    table.insert(due, "progress")
  end
  return due
end
local function outbox(events, sub)
  local due = due_events(events)
  if #due == 0 then
    return
  end
  local time = redis.call("TIME")
  local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  for _, event in ipairs(due) do
    local delivery = id .. "." .. redis.call("INCR", KEYS[11] .. "seq")
    redis.call("HSET", KEYS[11] .. "d:" .. delivery, "job", id,
      "event", event, "phase", new, "at", ms, "attempt", 0, "sub", sub)
    redis.call("ZADD", KEYS[11] .. "due", ms, delivery)
  end
end
if ARGV[7] == "phase" or ARGV[7] == "progress" then
  local notify = redis.call("HGET", key, "notify")
  if notify then
    outbox(cjson.decode(notify)["events"], "")
  end
  local who = redis.call("HMGET", key, "owner", "task")
  local subs = redis.call("HGETALL", KEYS[11] .. "subs:" .. (who[1] or ""))
  for i = 1, #subs, 2 do
    local sub = cjson.decode(subs[i + 1])
    local task = sub["task"]
    if task == nil or task == cjson.null or task == who[2] then
      outbox(sub["events"], subs[i])
    end
  end
end

local record = nil
if ARGV[7] ~= "" then
  -- The owner (absent for the anonymous owner) lets live views follow
  -- one owner's jobs without reading them.
  local owner = redis.call("HGET", key, "owner")
  if not owner then
    owner = nil
  end
  local event = cjson.encode(
    {id = id, phase = new, kind = ARGV[7], owner = owner})
  local published = event
  if ARGV[7] == "phase" and FINAL[new] and not FINAL[current] then
    -- A job's end carries the record (unless large), after a newline:
    -- waiters for the end answer from it instead of reading the job.
    record = redis.call("HGETALL", key)
    local size = 0
    for _, text in ipairs(record) do
      size = size + #text
    end
    if size <= RECORD_IN_EVENT then
      published = event .. "\n" .. cjson.encode(record)
    end
  end
  redis.call("PUBLISH", ARGV[6], published)
  if ARGV[8] ~= "" and (current == "EXECUTING" or current == "SUSPENDED")
  then
    redis.call("PUBLISH", ARGV[8], event)
  end
end
if parent_key then
  -- The parent's followers (event streams, waits for its children) hear
  -- of the change of its counts.
  local parent = redis.call("HMGET", parent_key, "phase", "owner")
  redis.call("PUBLISH", ARGV[6], cjson.encode({
    id = parent_id, phase = parent[1],
    kind = "children", owner = parent[2] or nil}))
end
return {"ok", current, record or redis.call("HGETALL", key)}
