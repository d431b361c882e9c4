-- Concurrency limits: a QUEUED job whose record names limit groups
-- ("limits": {group: limit}) goes to the queue only while every one of its
-- groups has fewer admitted jobs than its limit; otherwise it waits in the
-- waiting set of a full group, in queue order (the score its queue entry
-- would have: priority, then time). Admitted means "in the queue or
-- running": a group's running set holds its admitted jobs, so no more than
-- the limit can ever be EXECUTING. transition.lua drops a job from its
-- groups' sets when it leaves QUEUED/EXECUTING/SUSPENDED; then "next"
-- admits the jobs that were waiting for the room it left.
--
-- KEYS[1] prefix of the limit keys: .."run:"..group (set of admitted job
--         ids), .."wait:"..group (sorted set of waiting ids), .."groups"
--         (every group in use)
-- KEYS[2] prefix of job records (the id is appended)
-- ARGV[1] "job": admit the job ARGV[2] (its queue score ARGV[3]);
--         "next": admit waiting jobs of the groups ARGV[2..]
--
-- Returns the ids admitted (for "job": {id} or {}). Admitting is
-- idempotent: a job already admitted is admitted again at no cost.
local limits_prefix = KEYS[1]
local record_prefix = KEYS[2]

local function limits_of(id)
  local state = redis.call("HMGET", record_prefix .. id, "phase", "limits")
  if state[1] ~= "QUEUED" or not state[2] then
    return nil
  end
  return cjson.decode(state[2])
end

local function sorted_groups(limits)
  local groups = {}
  for group in pairs(limits) do
    table.insert(groups, group)
  end
  table.sort(groups)
  return groups
end

-- Admit one job (with its queue score), or answer the first group it
-- must wait in: one that is full, or one where a job with a better score
-- already waits (room left by a job that just ended is for the waiting
-- jobs, in order, not for whoever comes next).
local function try(id, limits, score)
  local groups = sorted_groups(limits)
  for _, group in ipairs(groups) do
    local running = limits_prefix .. "run:" .. group
    if redis.call("SISMEMBER", running, id) == 0 then
      if redis.call("SCARD", running) >= tonumber(limits[group]) then
        return group
      end
      local head = redis.call(
        "ZRANGE", limits_prefix .. "wait:" .. group, 0, 0, "WITHSCORES")
      if #head > 0 and head[1] ~= id
          and tonumber(head[2]) < tonumber(score) then
        return group
      end
    end
  end
  for _, group in ipairs(groups) do
    redis.call("SADD", limits_prefix .. "run:" .. group, id)
    redis.call("ZREM", limits_prefix .. "wait:" .. group, id)
    redis.call("SADD", limits_prefix .. "groups", group)
  end
  return nil
end

if ARGV[1] == "job" then
  local id = ARGV[2]
  local limits = limits_of(id)
  if not limits then
    return {}
  end
  local full = try(id, limits, ARGV[3])
  if not full then
    return {id}
  end
  -- NX: a job sent again while it waits keeps its place.
  redis.call("ZADD", limits_prefix .. "wait:" .. full, "NX", ARGV[3], id)
  redis.call("SADD", limits_prefix .. "groups", full)
  return {}
end

local admitted = {}
for i = 2, #ARGV do
  local group = ARGV[i]
  local waiting = limits_prefix .. "wait:" .. group
  -- Bounded: a pass admits at most this many per group.
  for _ = 1, 1000 do
    local head = redis.call("ZRANGE", waiting, 0, 0, "WITHSCORES")
    if #head == 0 then
      break
    end
    local id, score = head[1], head[2]
    local limits = limits_of(id)
    if not limits or not limits[group] then
      redis.call("ZREM", waiting, id)  -- gone, or no longer QUEUED
    else
      local full = try(id, limits, score)
      if not full then
        table.insert(admitted, id)
      elseif full == group then
        break
      else
        -- Room here, none in another of its groups: it waits there.
        redis.call("ZREM", waiting, id)
        redis.call("ZADD", limits_prefix .. "wait:" .. full, "NX", score, id)
      end
    end
  end
end
return admitted
