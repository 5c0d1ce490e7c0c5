from mgrun.memory_limit import set_memory_limit

success = set_memory_limit(2.0, strict=False)
if success:
    print("Memory limit set successfully")
else:
    print("Failed to set memory limit, continuing anyway...")
