-- Put one job on the arq queue and wake the workers, in one round trip.
-- What arq's enqueue_job does (refuse an id that exists, store the payload
-- with an expiry, add the id to the queue), as one atomic script instead of
-- a WATCH transaction of three round trips, plus a wake-up message so that
-- an idle worker polls at once rather than at its next poll.
--
-- KEYS[1] arq job key
-- KEYS[2] arq result key
-- KEYS[3] queue (sorted set)
-- ARGV[1] arq job id
-- ARGV[2] payload
-- ARGV[3] score (enqueue time in ms minus priority × step, see phaser.queue)
-- ARGV[4] expiry of the payload (ms)
-- ARGV[5] wake-up channel
--
-- Returns 1 if queued, 0 if that id is already queued, running or done.
if redis.call("EXISTS", KEYS[1], KEYS[2]) > 0 then
  return 0
end
redis.call("SET", KEYS[1], ARGV[2], "PX", tonumber(ARGV[4]))
redis.call("ZADD", KEYS[3], tonumber(ARGV[3]), ARGV[1])
redis.call("PUBLISH", ARGV[5], ARGV[1])
return 1
