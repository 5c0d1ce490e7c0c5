import sys
from mgrun.memory_limit import validate_memory_limit, set_memory_limit

# New code - validate first
is_valid, error = validate_memory_limit(args.ram_limit)
if not is_valid:
    print(f"Invalid RAM limit: {error}")
    sys.exit(1)
set_memory_limit(args.ram_limit)
