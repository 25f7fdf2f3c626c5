"""The upstream stand-in: a fake Anthropic API built so that it is never the bottleneck.

Raw asyncio protocol, no framework: one parse of the request head, prebuilt
response bytes, timers for latency and for server-sent events. Timing comes from
the command line and may be overridden per request by headers, so one stand-in
serves every scenario of a run:

- `x-bench-latency-ms`: wait before the response head (non-streaming answers);
- `x-bench-first-ms`: wait before the first event of a stream;
- `x-bench-interval-ms`: wait between events;
- `x-bench-events`: how many events a stream has (at least 6).

A request whose JSON body says `"stream": true` gets an Anthropic-shaped SSE
stream; any other request gets a small Anthropic message. `GET /health` is 200.

    python -m bench.upstream --port 0     # prints "listening <port>" when ready
"""
import argparse
import asyncio
import json
import re

from bench import wire

_STREAM_VALUE = re.compile(rb'\s*:\s*true')


def wants_stream(body):
    """True when the JSON body says "stream": true (found without parsing a 1 MB body)."""
    at = body.rfind(b'"stream"', max(0, len(body) - 256))  # the SDKs put it last
    if at < 0:
        at = body.find(b'"stream"')
    return at >= 0 and _STREAM_VALUE.match(body, at + 8) is not None


class Timing:
    """Response timing in seconds, the defaults a request may override."""

    __slots__ = ("latency", "first", "interval", "events")

    def __init__(self, latency=0.0, first=0.002, interval=0.0005, events=200):
        self.latency, self.first, self.interval, self.events = latency, first, interval, events

    def for_request(self, headers):
        """A copy changed by the request's x-bench-* headers."""
        if b"x-bench-latency-ms" not in headers and b"x-bench-events" not in headers \
                and b"x-bench-first-ms" not in headers and b"x-bench-interval-ms" not in headers:
            return self
        ms = lambda name, default: float(headers[name]) / 1000 if name in headers else default  # noqa: E731
        return Timing(ms(b"x-bench-latency-ms", self.latency), ms(b"x-bench-first-ms", self.first),
                      ms(b"x-bench-interval-ms", self.interval),
                      max(6, int(headers.get(b"x-bench-events", self.events))))


class StandIn(asyncio.Protocol):
    """One client connection; requests are answered in order (no pipelining overlap)."""

    def __init__(self, timing):
        self.timing = timing
        self.reader = wire.RequestReader()
        self.transport = None
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data):
        self.reader.feed(data)
        self._next()

    def _next(self):
        while not self.busy and self.transport is not None:
            request = self.reader.next_request()
            if request is None:
                return
            self._answer(*request)

    def _answer(self, method, path, headers, body):
        if path.startswith(b"/health"):
            self.transport.write(wire.OK_TEXT)
            return
        timing = self.timing.for_request(headers)
        if wants_stream(body):
            self.busy = True
            _Stream(self, timing).start()
        elif timing.latency > 0:
            self.busy = True
            asyncio.get_running_loop().call_later(timing.latency, self._send_message)
        else:
            self.transport.write(wire.MESSAGE_RESPONSE)

    def _send_message(self):
        if self.transport is not None:
            self.transport.write(wire.MESSAGE_RESPONSE)
        self.done()

    def done(self):
        """The current response is complete: serve the next buffered request."""
        self.busy = False
        self._next()


class _Stream:
    """Writes one SSE response, event by event, on the loop's timers."""

    def __init__(self, conn, timing):
        self.conn, self.timing = conn, timing
        self.events = wire.sse_events(timing.events)
        self.sent = 0
        self.loop = asyncio.get_running_loop()

    def start(self):
        self.conn.transport.write(wire.SSE_HEAD)
        self.loop.call_later(self.timing.first, self._tick)

    def _tick(self):
        transport = self.conn.transport
        if transport is None:
            return
        if self.timing.interval <= 0:
            transport.write(b"".join(map(wire.chunk, self.events)) + wire.LAST_CHUNK)
            self.conn.done()
            return
        transport.write(wire.chunk(self.events[self.sent]))
        self.sent += 1
        if self.sent < len(self.events):
            self.loop.call_later(self.timing.interval, self._tick)
        else:
            transport.write(wire.LAST_CHUNK)
            self.conn.done()


async def serve(host, port, timing, ready=print):
    """Serve forever on host:port (0 picks a free port), calling `ready(port)` once bound."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StandIn(timing), host, port, backlog=4096,
                                      reuse_address=True)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--first-ms", type=float, default=2.0)
    parser.add_argument("--interval-ms", type=float, default=0.5)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args(argv)
    timing = Timing(args.latency_ms / 1000, args.first_ms / 1000, args.interval_ms / 1000,
                    max(6, args.events))
    ready = lambda port: print(json.dumps({"listening": port}), flush=True)  # noqa: E731
    try:
        asyncio.run(serve(args.host, args.port, timing, ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
