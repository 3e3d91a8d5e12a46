"""A bare Starlette endpoint that only answers: the ceiling the intake benchmark compares to."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"}, status_code=202)


app = Starlette(routes=[Route("/webhooks/sms/{gateway}/{token}", accept, methods=["POST"])])

if __name__ == "__main__":
    # The same server settings the bridge runs with (uvloop, httptools, no access log).
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
    )
