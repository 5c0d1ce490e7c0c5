import sys
from mgrun.memory_limit import validate_total_allocations

# Old code - no validation
instance1_limit = 5.0
instance2_limit = 5.0
instance3_limit = 5.0

# New code - validate total
is_valid, error = validate_total_allocations(
    instance1_limit, instance2_limit, instance3_limit
)
if not is_valid:
    print(f"Total allocation too high: {error}")
    sys.exit(1)
