"""A small asyncio client for SSE streams: time to first byte and the gap between events.

Raw sockets and a minimal HTTP/1.1 response reader, so the client costs little
beside the servers it measures. Times are `time.perf_counter()` seconds.
"""
import asyncio
import time


def request_bytes(host, port, path, body, headers=None):
    """The bytes of one keep-alive POST."""
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             "anthropic-version: 2023-06-01", "x-api-key: sk-ant-bench-not-a-secret",
             f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _body_pieces(reader, headers):
    """Yield the body as it arrives, decoding chunked framing."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise ConnectionError("connection closed mid-body")
            left -= len(data)
            yield data
    else:
        while data := await reader.read(65536):
            yield data


async def exchange(reader, writer, request, on_open=None):
    """Send one request and read its response; returns a result dict.

    `ttfb` runs from the send to the first body byte, `gaps` between the ends of
    successive events (a blank line ends an SSE event).
    """
    sent = time.perf_counter()
    writer.write(request)
    status, headers = await _read_head(reader)
    head = time.perf_counter()
    first, last_event, gaps, events, tail = None, None, [], 0, b""
    async for piece in _body_pieces(reader, headers):
        now = time.perf_counter()
        if first is None:
            first = now
            if on_open:
                on_open()
        ended = (tail + piece).count(b"\n\n")
        tail = piece[-1:]
        for _ in range(ended):
            if last_event is not None:
                gaps.append(now - last_event)
            last_event = now
            events += 1
    end = time.perf_counter()
    return {"status": status, "ttfb": None if first is None else first - sent,
            "head": head - sent, "total": end - sent,
            "gaps": gaps, "events": events, "headers": headers}


async def _loop_one(host, port, request, deadline, results, max_requests):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and len(results) < max_requests:
            results.append(await exchange(reader, writer, request))
    finally:
        writer.close()


async def closed_loop(host, port, request, concurrency, duration, max_requests=10**9):
    """`concurrency` connections, each sending the next request when the last one ends."""
    results = []
    deadline = time.perf_counter() + duration
    await asyncio.gather(*(_loop_one(host, port, request, deadline, results, max_requests)
                           for _ in range(concurrency)))
    return results


async def _hold_one(host, port, request, opened, results):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        results.append({"status": None, "error": repr(exc)})
        opened()
        return
    try:
        results.append(await exchange(reader, writer, request, on_open=opened))
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        results.append({"status": None, "error": repr(exc)})
        opened()
    finally:
        writer.close()


async def hold_open(host, port, request, count, while_open, open_timeout=60.0):
    """Open `count` streams at once; once every one has its first byte, await `while_open()`.

    Returns (results, seconds until all were open or None on timeout, what
    `while_open` returned). The streams then run to their end.
    """
    started = time.perf_counter()
    all_open = asyncio.Event()
    opened_count = 0

    def opened():
        nonlocal opened_count
        opened_count += 1
        if opened_count == count:
            all_open.set()

    results = []
    tasks = [asyncio.create_task(_hold_one(host, port, request, opened, results)) for _ in range(count)]
    try:
        await asyncio.wait_for(all_open.wait(), open_timeout)
        open_after = time.perf_counter() - started
    except asyncio.TimeoutError:
        open_after = None
    observed = await while_open()
    await asyncio.gather(*tasks)
    return results, open_after, observed
