"""Stock vetiver.VetiverAPI serving one penguin_model version: the benchmark's baseline.

python bench/api_stock_server.py PORT VERSION
"""

import sys

import uvicorn
from vetiver import VetiverAPI

from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

if __name__ == "__main__":
    port, version = int(sys.argv[1]), sys.argv[2]
    settings = load_settings()
    model = boards.read_model(
        boards.board_from_url(settings.board_url, settings.aws_endpoint_url), version=version
    )
    uvicorn.run(
        VetiverAPI(model, check_prototype=True).app,
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
    )
