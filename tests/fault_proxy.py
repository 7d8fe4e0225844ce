"""A fault-injecting TCP proxy on loopback, in front of the tests' S3 server.

Modes: ``pass`` (bytes go through), ``reset`` (every connection, open or new, is cut with a
TCP reset), ``slowdown`` (every request is answered ``503 SlowDown``, as S3 does under load),
``stall`` (connections are accepted and never answered). Switching to a fault also aborts the
connections already open, so clients that keep connections alive meet it too. It listens on
127.0.0.1 only, forwards only to the one port it is given, and stops with the test.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

_SLOW_DOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                   b"<Message>Please reduce your request rate.</Message></Error>")
SLOW_DOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_SLOW_DOWN_BODY)
             + _SLOW_DOWN_BODY)


class FaultProxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.mode = "pass"
        self.cuts = 0  # connections cut or refused so far
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def set_mode(self, mode: str) -> None:
        def switch() -> None:
            self.mode = mode
            if mode != "pass":
                for writer in list(self._open):
                    self._cut(writer)
        self._loop.call_soon_threadsafe(switch)

    def _cut(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:  # SO_LINGER 0: close sends a reset, not a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()
        self._open.discard(writer)
        self.cuts += 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "reset":
            self._cut(writer)
            return
        if mode == "slowdown":
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                writer.write(SLOW_DOWN)
                await writer.drain()
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                pass
            self.cuts += 1
            writer.close()
            return
        if mode == "stall":
            self._open.add(writer)
            await asyncio.sleep(60)
            self._cut(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._open.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if sink in self._open:
                    self._open.discard(sink)
                    sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        def stop() -> None:
            for writer in list(self._open):
                writer.transport.abort()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._server.close()
            self._loop.stop()
        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
