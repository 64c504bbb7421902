"""A TCP proxy that makes a local object store look remote: every TCP
connection through it is capped at a bandwidth of its own and delayed by a
round trip, while connections together get as much as the machine has.

That is what a remote S3 endpoint looks like to one node: one connection's
rate is bounded by its window over the round trip (tens of MB/s across a
region), the store as a whole by the node's network (far more). On loopback
Garage one connection already gets all the store has, so ranged reads in
parallel cannot show what they are for; through this proxy they can.

The proxy forwards bytes unchanged, in order, in both directions: the
client's SigV4 signature covers its Host header, which names the proxy's
address, and Garage checks it against the same header, so signed requests
pass. Each direction of a connection is a delay line (bytes leave
`--rtt-ms / 2` after they came in) followed by a pacer (at most
`--per-connection-mbps` MB/s, as a virtual clock: a chunk leaves when the
chunks before it have had their time), and reads from the sender only as
fast as that, so backpressure reaches the sender as over a slow link.

    python3 bench/throttle_proxy.py --target 127.0.0.1:3900 \\
        --per-connection-mbps 40 --rtt-ms 10

prints `throttle-proxy listening on 127.0.0.1:PORT` once it listens (port 0
by default: a free one) and runs until killed."""

import argparse
import asyncio
import time

# A direction's in-flight chunks at most: what the delay line holds, beyond
# one bandwidth-delay product (rounded up), before it stops reading.
SPARE_CHUNKS = 4


class Direction:
    """One direction of one connection: delay, then pace."""

    def __init__(self, rate, delay):
        self.rate = rate  # bytes per second
        self.delay = delay  # seconds
        # Pacing bursts stay within a few milliseconds of the link's time.
        self.chunk = max(16 * 1024, min(256 * 1024, int(rate * 0.004)))
        in_flight = rate * delay / self.chunk
        self.queue = asyncio.Queue(maxsize=int(in_flight) + SPARE_CHUNKS)

    async def read(self, reader):
        """Takes chunks in as they come, stamped; None at the end."""
        try:
            while True:
                data = await reader.read(self.chunk)
                await self.queue.put((time.monotonic(), data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await self.queue.put((time.monotonic(), b""))

    async def write(self, writer):
        """Sends the chunks on when their delay and pace allow."""
        next_free = 0.0
        try:
            while True:
                came, data = await self.queue.get()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                now = time.monotonic()
                leave = max(came + self.delay, next_free, now)
                if leave > now:
                    await asyncio.sleep(leave - now)
                next_free = max(leave, next_free) + len(data) / self.rate
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return


async def relay(client_reader, client_writer, target, rate, delay):
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    up, down = Direction(rate, delay), Direction(rate, delay)
    tasks = [
        asyncio.create_task(up.read(client_reader)),
        asyncio.create_task(up.write(server_writer)),
        asyncio.create_task(down.read(server_reader)),
        asyncio.create_task(down.write(client_writer)),
    ]
    # The connection is done when the server's answer is through (its
    # writer ended) or either side dropped.
    await asyncio.wait([tasks[3]], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    for w in (server_writer, client_writer):
        w.close()


async def serve(args):
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    rate = args.per_connection_mbps * 1e6
    delay = args.rtt_ms / 2000

    def handle(r, w):
        return relay(r, w, target, rate, delay)

    server = await asyncio.start_server(handle, args.host, args.port)
    addr = server.sockets[0].getsockname()
    print(f"throttle-proxy listening on {addr[0]}:{addr[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="HOST:PORT to forward to")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--per-connection-mbps", type=float, required=True,
                   help="each connection's cap, per direction, in MB/s (10^6 bytes)")
    p.add_argument("--rtt-ms", type=float, default=0.0, help="round trip added to every connection")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
