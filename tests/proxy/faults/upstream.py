"""A hostile upstream for the fault tests, run as its own process (``python upstream.py``).

Routes: ``/hang/...`` reads the request and never answers; ``/download`` sends 64 MB of
text; ``/endless-headers`` sends a
status line, then header lines forever; ``/ad...`` answers a small JSON ad (a campaign the
example policies personalise, when the request asks for it); anything else a small JSON body
at once. Prints its port on the first line of stdout.
"""

from __future__ import annotations

import asyncio
import sys

AD = (
    b'{"placement": "home-top", "campaign_id": "cmp-spring", "creative": {"headline":'
    b' "Spring collection", "image_url": "https://cdn.example/spring.jpg", "cta": "Shop",'
    b' "click_url": "https://shop.example/spring"}, "tracking": {"impressions": []}}'
)  # the example ad server's spring creative (tests/proxy/support.SPRING_AD)
PLAIN = b'{"ok": true}'


def _answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            if target.startswith(b"/hang"):
                await reader.read()  # until the proxy gives up and closes
                return
            if target.startswith(b"/endless-headers"):
                writer.write(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while True:
                    writer.write(b"x-endless-%d: %s\r\n" % (n, b"v" * 200))
                    n += 1
                    await writer.drain()
            if target.startswith(b"/download"):  # 64 MB of text: streamed through
                size = 64 << 20
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n"
                    % size
                )
                for _ in range(size >> 20):
                    writer.write(b"x" * (1 << 20))
                    await writer.drain()
                continue
            writer.write(_answer(AD if target.startswith(b"/ad") else PLAIN))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(main()))
