from mgrun.context import ExecutionContext, BoundsExceededError
from tinyllm.config.loader import Config
from tinyllm.core.message import Message, MessagePayload

# Create context with custom limits
config = Config()
ctx = ExecutionContext(
    trace_id='trace-123',
    graph_id='my-graph',
    config=config,
    max_messages=500,           # 500 messages max
    max_message_size_bytes=2_097_152,    # 2 MB per message
    max_total_size_bytes=52_428_800      # 50 MB total
)

try:
    # Add messages with automatic bounds checking
    msg = Message(
        trace_id='trace-123',
        source_node='node-1',
        payload=MessagePayload(content='Hello world')
    )
    ctx.add_message(msg)

    # Check memory usage
    stats = ctx.get_memory_usage()
    if stats.near_message_limit:
        print(f"Warning: {stats.message_count_utilization:.0%} of message limit used")

    # Prune if needed
    if stats.message_count > 400:
        pruned = ctx.prune_old_messages(keep_count=250)
        print(f"Pruned {pruned} old messages")

except BoundsExceededError as e:
    print(f"Limit exceeded: {e.limit_type}")
    print(f"Current: {e.current_value}, Limit: {e.limit_value}")
