"""TLS-terminating reverse proxy (what a hospital's nginx does) for the cross-site iframe trial:
https://127.0.0.1:PORT -> UPSTREAM with X-Forwarded-Proto/Host. Certificate files from CERT_DIR
(leaf.pem, leaf.key; SAN localhost and 127.0.0.1), see docs/outside-clients.md.

    .venv/bin/python tools/outside_clients/tlsproxy.py 8636 http://127.0.0.1:8635 /tmp/cds97530-outside/tls
"""
from __future__ import annotations

import sys

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PORT, UPSTREAM, CERT_DIR = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
client = httpx.AsyncClient(timeout=30, follow_redirects=False)
HOP = ("content-length", "transfer-encoding", "connection", "content-encoding")


async def forward(request: Request) -> Response:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("host", "content-length")]
    headers += [("x-forwarded-proto", "https"), ("x-forwarded-host", request.headers.get("host", ""))]
    url = UPSTREAM + request.url.path + (("?" + request.url.query) if request.url.query else "")
    upstream = await client.request(request.method, url, headers=headers, content=await request.body())
    out = Response(upstream.content, status_code=upstream.status_code)
    for k, v in upstream.headers.multi_items():
        if k.lower() not in HOP:
            out.headers.append(k, v)
    return out


app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, ssl_certfile=f"{CERT_DIR}/leaf.pem", ssl_keyfile=f"{CERT_DIR}/leaf.key",
                log_level="warning")
