"""Side-by-side comparison of reply strategies for one character, with measured style."""
