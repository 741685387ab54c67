"""A production-profile Celery worker that stops in the middle of its first raw_penguins step.

    python -m penguin_pipeline_tests.prod.stalling_worker <celery's arguments (prod.worker_command)>

The first worker process (among all started with the same PENGUIN_TEST_STALL_MARK) that has
inserted a landing file's rows, not yet committed, writes its pid to that mark file and waits
there, as a step doing long work would, for the test to kill it. Every other call goes through.
"""

from __future__ import annotations

import os
import sys
import time


def install(mark: str) -> None:
    from penguin_pipeline.processing import ingest

    publish = ingest.publish_file

    def publish_then_stall(*args, **kwargs):
        result = publish(*args, **kwargs)
        try:
            fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return result  # another process stalled already
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        while True:
            time.sleep(1)

    ingest.publish_file = publish_then_stall


if __name__ == "__main__":
    install(os.environ["PENGUIN_TEST_STALL_MARK"])
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    sys.exit(main())
