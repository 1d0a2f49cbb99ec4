"""The Redis runtime: key names, Lua scripts, the Redis store, ingest into shard streams."""
