"""The simulated marketplace world, A/B traffic simulator, statistics and reports."""
