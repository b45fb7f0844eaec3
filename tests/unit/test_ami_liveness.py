"""The AMI client's reconnect backoff and its own Ping check, against a loopback TCP peer that
speaks just enough AMI to log in (the frozen-Asterisk case runs on the real stack)."""

from __future__ import annotations

import asyncio

from callcenter.asterisk.ami import RECONNECT_FIRST, AmiClient, _BackoffManager


def test_a_refused_connection_is_retried_after_a_growing_delay_and_a_login_resets_it():
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        manager = _BackoffManager(loop=loop, host="127.0.0.1", port=1, username="u", secret="s",
                                  reconnect_timeout=RECONNECT_FIRST)
        manager.reconnect_max = 5
        manager.connect = lambda: None  # the retries panoramisk schedules go nowhere
        delays = []
        for _ in range(5):
            refused = loop.create_future()
            refused.set_exception(ConnectionRefusedError("refused"))
            manager.connection_made(refused)
            delays.append(manager.reconnect_timeout)
        client = AmiClient("127.0.0.1", 1, "u", "secret-x")
        client._logged_in_cb(manager)
        delays.append(manager.reconnect_timeout)
        return delays

    assert asyncio.run(scenario()) == [2, 4, 5, 5, 5, RECONNECT_FIRST]


class SilentAfterLogin:
    """A TCP peer that accepts the Login and then never answers anything (a frozen Asterisk)."""

    def __init__(self):
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        block = b""
        while b"\r\n\r\n" not in block:
            block += await reader.read(1024)
        action_id = next((line.split(b": ", 1)[1] for line in block.split(b"\r\n")
                          if line.lower().startswith(b"actionid")), b"")
        writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\nMessage: Authentication accepted\r\n\r\n")
        await writer.drain()
        try:
            while await reader.read(1024):
                pass  # Pings and everything else: never answered
        finally:
            writer.close()


def test_an_unanswered_ping_drops_the_connection_within_two_intervals_and_it_logs_in_again():
    async def scenario():
        peer = SilentAfterLogin()
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AmiClient("127.0.0.1", port, "callcenter", "secret-x", ping_interval=0.3)
        try:
            await client.connect(timeout=5)
            assert client.connected
            start = asyncio.get_running_loop().time()
            while client.connected and asyncio.get_running_loop().time() - start < 3:
                await asyncio.sleep(0.02)
            noticed = asyncio.get_running_loop().time() - start
            dropped = not client.connected
            while peer.connections < 2 and asyncio.get_running_loop().time() - start < 5:
                await asyncio.sleep(0.05)
            return dropped, noticed, client.dead_connections, peer.connections
        finally:
            client.close()
            server.close()

    dropped, noticed, dead, connections = asyncio.run(scenario())
    assert dropped and dead >= 1
    assert noticed <= 2 * 0.3 + 0.2, noticed
    assert connections >= 2, "it connected again"
