from mgrun.memory_limit import get_system_memory_gb

system_memory = get_system_memory_gb()
if system_memory > 0:
    print(f"System has {system_memory:.2f} GB RAM")
    recommended_limit = system_memory * 0.8
    print(f"Recommended max limit: {recommended_limit:.2f} GB")
