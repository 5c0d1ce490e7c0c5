from mgrun.memory_limit import set_memory_limit

# Old code still works - defaults to strict=True
set_memory_limit(2.0)  # Raises exception on failure
