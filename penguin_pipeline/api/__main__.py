"""`python -m penguin_pipeline.api [--host H] [--port P]`: serve penguin_model with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m penguin_pipeline.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
    parser.add_argument("--no-access-log", action="store_true", help="for benchmarks")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from .app import create_app

    try:
        app = create_app()
    except Exception as exc:  # a clear line, not a traceback, for the common "no model yet"
        logging.getLogger("penguin_pipeline.api").error("cannot start: %s", exc)
        return 1
    access_log = not args.no_access_log
    uvicorn.run(app, host=args.host, port=args.port, access_log=access_log, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
