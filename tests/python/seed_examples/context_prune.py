# Prune to keep only 100 most recent messages
removed = ctx.prune_old_messages(keep_count=100)

# Use default strategy (keeps half of max_messages)
removed = ctx.prune_old_messages()
