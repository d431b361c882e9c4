-- Add (or replace) one result of a running job, if the caller still holds
-- the job's claim. A worker that lost its claim cannot add results.
--
-- KEYS[1] job record (hash)
-- ARGV[1] claim token the record must hold
-- ARGV[2] result as compact JSON: [id, size, mime type, storage key suffix]
-- ARGV[3] event channel
-- ARGV[4] job id
--
-- Returns "ok", "missing" or "check".
local key = KEYS[1]
local state = redis.call("HMGET", key, "phase", "claim", "results", "owner")
if not state[1] then
  return "missing"
end
if state[1] ~= "EXECUTING" or state[2] ~= ARGV[1] then
  return "check"
end
local result = cjson.decode(ARGV[2])
local results = {}
if state[3] then
  results = cjson.decode(state[3])
end
local replaced = false
for i, existing in ipairs(results) do
  if existing[1] == result[1] then
    results[i] = result
    replaced = true
  end
end
if not replaced then
  table.insert(results, result)
end
redis.call("HSET", key, "results", cjson.encode(results))
local owner = state[4]
if not owner then
  owner = nil
end
redis.call("PUBLISH", ARGV[3],
  cjson.encode({id = ARGV[4], phase = state[1], kind = "result",
    owner = owner}))
return "ok"
