-- examples/c/policy.lua — the policy the C agent host runs on its own loop.
-- It owns the conversation store (the host adds to it, Lua decides what
-- goes when it is full) and watches memory while the host works.
local turns_seen = 0

local conversation = assert(mg.store {
  name = "conversation",
  max_messages = 24,          -- a small window, so the example prunes
  max_total_size = "16K",
  warn_at = 0.75,
  on_full = "prune",
  -- Lua decides: the oldest unpinned messages go first; a tool call and
  -- its result share a group, and the store evicts a group whole.
  strategy = function(view, need)
    local ids = {}
    for m in view:messages() do
      if #ids >= need.count then break end
      if not m.pinned then ids[#ids + 1] = m.id end
    end
    return ids
  end,
  on_warn = function(store, kind, stats)
    mg.log.info("conversation_near_limit",
                { kind = kind, messages = stats.message_count })
  end,
})

-- Every 100 ms: how much of this machine's memory is left, and the store.
mg.every(100, function()
  turns_seen = turns_seen + 1
  local m = mg.memory()
  local st = conversation:stats()
  mg.log.debug("memory", { available = m.effective_available,
                           messages = st.message_count,
                           bytes = st.total_size_bytes })
end)

mg.log.info("policy_ready", { store = conversation.name })
