"""The Celery app of the production profile's workers (README, "Production profile").

    celery -A penguin_pipeline.celery_worker worker -Q <PENGUIN_CELERY_QUEUE> ...

`make prod-up` starts PENGUIN_WORKERS of them (penguin_pipeline/prod.py, `worker_command`); one on
another host is `python -m penguin_pipeline.prod worker` there, with the same environment.
"""

# Imported in the worker's main process, so that its pool process forks with the pipeline's modules
# (Dagster's definitions, scikit-learn, vetiver) loaded instead of importing them at its first step.
from . import definitions  # noqa: F401
from .defs.workers import worker_app
from .settings import load_settings

app = worker_app(load_settings())
