"""`python -m penguin_pipeline.explorer [--host H] [--port P]`: the model explorer with uvicorn
(`make app`); the API it asks is PENGUIN_API_URL, with the key PENGUIN_API_KEY."""

import argparse
import logging

import uvicorn

from penguin_pipeline.settings import load_settings

from .app import create_app

settings = load_settings()
parser = argparse.ArgumentParser(prog="python -m penguin_pipeline.explorer", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=settings.app_port)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per prediction otherwise
keyed = "with its key" if settings.api_key else "without a key"
logging.getLogger("penguin_pipeline.explorer").info(
    f"model explorer at http://{args.host}:{args.port}, asking {settings.api_url} {keyed}"
)
uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=False)
