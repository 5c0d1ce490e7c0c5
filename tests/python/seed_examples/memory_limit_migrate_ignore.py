from mgrun.memory_limit import set_memory_limit

# New code - more explicit
success = set_memory_limit(2.0, strict=False)
if not success:
    logger.warning("Failed to set memory limit")
