stats = ctx.get_memory_usage()
print(f"Messages: {stats.message_count}/{stats.max_messages}")
print(f"Utilization: {stats.message_count_utilization:.1%}")
print(f"Near limit: {stats.near_message_limit}")
