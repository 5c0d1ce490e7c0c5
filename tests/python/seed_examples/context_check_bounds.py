ctx.check_bounds()  # Validate current state
