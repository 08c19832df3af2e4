"""The orchestration: Prefect flows and tasks over the stages.

Importing the package registers Prefect Secret blocks as the core's secret store.
"""

from core.keys import use_secret_store
from flows.secrets import prefect_secret

use_secret_store(prefect_secret)
