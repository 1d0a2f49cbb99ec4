-- Save a CSM task once, remembering the order tasks were first saved in.
-- KEYS  1 tasks (hash)  2 task order (list)    ARGV  1 task id  2 task JSON
-- Returns 1 when saved, 0 when a task with that id already exists.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
