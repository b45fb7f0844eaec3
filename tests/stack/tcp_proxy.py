"""A loopback TCP proxy for fault injection between the engine and Asterisk's AMI: it forwards
bytes both ways until told to cut every connection (and refuse new ones for a while), or to cut
the connection right after the engine sends a given action. Runs its own event loop in a thread,
so tests drive it with plain calls."""

from __future__ import annotations

import asyncio
import threading


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.StreamWriter] = set()
        self._cut_after: bytes | None = None
        self.connections = 0  # accepted so far
        self.cuts = 0  # connections cut on purpose

    # ------------------------------------------------------------------ control (any thread)
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close_all(listen=False))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self) -> None:
        """Drop every connection and stop listening: the engine's reconnects are refused."""
        self._call(self._close_all(listen=False))

    def restore(self) -> None:
        self._call(self._listen())

    def cut_after(self, marker: bytes) -> None:
        """The next time the engine sends bytes holding ``marker``, forward them, then drop the
        connection at once (before Asterisk can answer). New connections are accepted as usual."""
        self._cut_after = marker

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # ------------------------------------------------------------------ the proxy itself
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.listen_port, reuse_address=True)

    async def _close_all(self, *, listen: bool) -> None:
        if self._server is not None and not listen:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._transports):
            writer.transport.abort()
            self.cuts += 1
        self._transports.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer, server_writer}
        self._transports |= pair

        async def pump(reader, writer, watch: bool) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
                    if watch and self._cut_after is not None and self._cut_after in data:
                        # the engine loses the connection before any answer; Asterisk gets a
                        # moment to read what was forwarded before its side is closed cleanly
                        self._cut_after = None
                        self.cuts += 1
                        client_writer.transport.abort()
                        await asyncio.sleep(0.5)
                        return
            except (ConnectionError, OSError):
                pass
            finally:
                for w in pair:
                    w.close()
                self._transports -= pair

        await asyncio.gather(pump(client_reader, server_writer, True), pump(server_reader, client_writer, False))
