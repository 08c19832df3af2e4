"""The k-anonymity engine in Spark, behind one entry point: `anonymize(df, config)`.

`AnonymizationConfig` (core.kanon.config) names the quasi-identifiers with their
hierarchies, the requirements (k, l, t, suppression limit), the algorithm ('optimal' or
'mondrian') and the metric; `anonymize` returns an `Anonymization`: the generalized frame,
the chosen transformation or partitions, the information loss and the independent
verification. The modules under it (full_domain, mondrian, verify) are its parts.
"""

from core.kanon.config import ALGORITHMS, AnonymizationConfig, Requirements
from core.kanon.models import KAnonymityError
from transforms.kanon.engine import Anonymization, MondrianPartitions, anonymize

__all__ = [
    "ALGORITHMS",
    "Anonymization",
    "AnonymizationConfig",
    "KAnonymityError",
    "MondrianPartitions",
    "Requirements",
    "anonymize",
]
