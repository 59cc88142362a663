"""Prefect tasks: thin wrappers that name, retry, tag and log one library call each.

Every task works on a whole run's frames or on a shard of accounts, never on one account:
a task run costs milliseconds of orchestration, which a million accounts would multiply.
"""
