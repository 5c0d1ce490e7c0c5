# Check and prune periodically
if ctx.get_memory_usage().message_count_utilization > 0.9:
    ctx.prune_old_messages()  # Default: keep half
