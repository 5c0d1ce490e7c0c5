-- examples/python/policy.lua — the policy the Python agent host runs on a
-- background thread (mgrun.Runtime). It owns the conversation store (the
-- host adds to it; Lua decides what goes when it is full), runs the model
-- worker under a memory limit, and publishes the worker's state in a
-- second store the host reads.
--   arg 1: the worker command's program (python3), arg 2: its script
local S = require("mg.strategies")
local python, worker = ...
assert(python and worker, "usage: policy.lua PYTHON WORKER.py")

local conversation = assert(mg.store {
  name = "conversation",
  max_messages = 30,
  max_total_size = "32K",
  on_full = "prune",
  -- chat APIs want the history to start at a user turn: drop whole turns,
  -- oldest first (a tool call and its result share a group: never split)
  strategy = S.user_turn_start,
})
local status = assert(mg.store { name = "status" })

local function publish(text) -- the newest line only
  status:clear()
  status:add { role = "status", content = text }
end

local model = assert(mg.spawn {
  name = "model", cmd = { python, worker },
  limit = "256M", warn_at = 0.8, sample_ms = 100,
  restart = "on-failure", max_restarts = 3,
})
model:on("warn", function(p, s)
  mg.log.warn("model_near_limit", { used = mg.format_size(s.used) })
end)
model:on("exit", function(p, e)
  publish(("model exited: %s"):format(e.reason))
end)

mg.every(100, function()
  local m = model:memory()
  if m then
    publish(("model pid %d: %s of %s (%d %%)"):format(model.pid,
      mg.format_size(m.used), mg.format_size(m.limit), math.floor(m.fraction * 100 + 0.5)))
  end
  local st = conversation:stats()
  mg.log.debug("conversation", { messages = st.message_count, bytes = st.total_size_bytes })
end)
publish("model starting")
