"""`python -m penguin_pipeline.api [--host H] [--port P] [--no-access-log]`: serve penguin_model
with uvicorn."""

import argparse
import logging
import os
import sys

import uvicorn

from .app import create_app

parser = argparse.ArgumentParser(prog="python -m penguin_pipeline.api", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
parser.add_argument("--no-access-log", dest="access_log", action="store_false")
args = parser.parse_args()  # before the app is made: --help must not need a model
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
try:
    app = create_app()
except Exception as exc:  # a clear line, not a traceback, for the common "no model yet"
    sys.exit(f"cannot start: {exc}")
uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log)
