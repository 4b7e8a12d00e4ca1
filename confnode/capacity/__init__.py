"""``confnode capacity``: measure this host with the media engine and estimate how many calls of
each type it carries, the way a Pexip conference node checks its capacity when it starts."""
