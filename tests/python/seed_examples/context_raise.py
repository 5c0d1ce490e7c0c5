from mgrun.context import BoundsExceededError

raise BoundsExceededError(
    "Message count 1000 exceeds limit of 1000",
    limit_type="message_count",
    current_value=1000,
    limit_value=1000,
    details={"trace_id": "abc-123"}
)
