"""The stages: Spark sessions, the zones on disk, the release front door, delivery.

Each stage reads datasets, applies transforms and writes its result; none uses
Prefect, so a flow task, the CLI or a test can call one alone.
"""
