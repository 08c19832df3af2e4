"""The k-anonymity engine in Spark."""
