"""A Socket.IO server as python-socketio's documentation writes one, under
uvicorn: the `brokers` suite's Socket.IO subject (`suites/brokers.toml`).

Usage: python app.py PORT [--redis redis://HOST:PORT] [--ping-interval S]

Clients connect over the WebSocket transport (`/socket.io/`), emit
`subscribe` with the channels they want (each one a room; the server
acknowledges with how many it joined) and receive `event` with the
channel and the payload. The publisher emits `publish` with a channel and
a payload, which the server emits to that room. With `--redis`, several
processes share their rooms through Redis (python-socketio's
`AsyncRedisManager`): a scale-out past one process's descriptors.
"""

import argparse
import sys

import socketio
import uvicorn


def app(redis, ping_interval):
    manager = socketio.AsyncRedisManager(redis) if redis else None
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        transports=["websocket"],
        ping_interval=ping_interval,
        cors_allowed_origins="*",
    )

    @sio.on("subscribe")
    async def subscribe(sid, rooms):
        if not isinstance(rooms, list):
            return 0
        for room in rooms:
            await sio.enter_room(sid, str(room))
        return len(rooms)

    @sio.on("publish")
    async def publish(sid, room, payload):
        await sio.emit("event", (str(room), payload), to=str(room))

    return socketio.ASGIApp(sio)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("--redis", default=None)
    p.add_argument("--ping-interval", type=float, default=25.0)
    a = p.parse_args()
    print(f"listening on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
    uvicorn.run(
        app(a.redis, a.ping_interval),
        host="127.0.0.1",
        port=a.port,
        log_level="warning",
        backlog=4096,
        ws="websockets",
    )


if __name__ == "__main__":
    main()
