from mgrun.memory_limit import validate_memory_limit, set_memory_limit

is_valid, error_msg = validate_memory_limit(2.0)
if is_valid:
    set_memory_limit(2.0)
else:
    print(f"Invalid limit: {error_msg}")
