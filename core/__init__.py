"""The core: configuration, policy, privacy accounting and the pure privacy math.

No Spark, no Prefect, no Great Expectations: everything here runs in a plain
Python process and is imported by every layer above it.
"""
