"""Synthetic landing data for the five sources: the embedded default data.

A generator, not a transform: it makes data from nothing but a seed. numpy draws, pyarrow
texts: every value is computed over whole arrays (no loop over rows), every random draw a
hash of (seed, tag, key), the key a subscriber's number or a record's (subscriber, number),
so a seed gives the same rows however the subscribers are chunked. No Spark, no IO
(stages/generate.py writes the files).

Output is the landing zone as operators export it: pyarrow tables of exactly the canonical
columns of `core.schemas.SOURCES`, in order, all strings (timestamps 'yyyy-MM-dd HH:mm:ss'
UTC, dates 'yyyy-MM-dd', booleans 'true'/'false'). Monthly charges are in thousands of won
(69.00 is 69,000 won a month).

Modules: `model` (the distributions drawn from), `draws` (hashed random draws as numpy
arrays), `text` (string columns from arrays), `records` (helpers shared by the sources),
one module per source, and `corruption` (malformed rows that ingest must quarantine).
"""

from synthetic.call_records import generate_call_records
from synthetic.corruption import inject_bad_rows, with_bad_rows
from synthetic.devices import generate_devices
from synthetic.network_flows import generate_network_flows
from synthetic.subscribers import generate_subscribers
from synthetic.web_visits import generate_web_visits

__all__ = [
    "generate_call_records",
    "generate_devices",
    "generate_network_flows",
    "generate_subscribers",
    "generate_web_visits",
    "inject_bad_rows",
    "with_bad_rows",
]
