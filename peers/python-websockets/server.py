"""A Python `websockets` echo server as its documentation writes one: a peer
rtbench-server is benchmarked beside (`suites/peers.toml`).

Usage: python server.py PORT. `websockets` comes from PyPI, installed by
`cargo xtask bench peers` into target/peers/venv. Its defaults stay (it pings
each client every 20 s, as Appwrite's SDKs do the other way round).
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main(port):
    async with serve(echo, "127.0.0.1", port):
        print(f"listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python server.py PORT")
    asyncio.run(main(int(sys.argv[1])))
