"""The ceiling of bench-api on this machine: a bare FastAPI app whose POST /predict reads the body
and answers a fixed prediction, served exactly like ours (one uvicorn worker, no access log).

python bench/api_bare_server.py PORT
"""

import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.get("/ping")
async def ping():
    return {"ping": "pong"}


@app.post("/predict")
async def predict(request: Request):
    await request.body()
    return Response(b'{"predict":[4000.0]}', media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
