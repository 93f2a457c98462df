"""A/B traffic simulator over the world: buckets, policies, displays, per-user statistics."""
