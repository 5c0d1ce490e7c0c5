from mgrun.memory_limit import validate_total_allocations

subject_limit = 2.0
observer_limit = 6.0
god_limit = 9.0

is_valid, error_msg = validate_total_allocations(
    subject_limit, observer_limit, god_limit
)

if not is_valid:
    print(f"Cannot start matrix mode: {error_msg}")
    return

# Proceed with starting instances...
