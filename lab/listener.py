"""The API's HTTPS port, opened and closed as the kube-apiserver static pod starts and stops.

While closed the port stays bound without listening: clients are refused, as when kube-apiserver
is not running, and nothing else can take the port before the API comes back on it.
"""

from __future__ import annotations

import socket
import ssl

from aiohttp import web

HOST = "127.0.0.1"


def _reserve(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections of the last opening may linger
    sock.bind((HOST, port))
    return sock


class Listener:
    def __init__(self, runner: web.AppRunner, ssl_context: ssl.SSLContext, port: int = 0) -> None:
        self._runner = runner
        self._ssl = ssl_context
        self._socket = _reserve(port)
        self.port: int = self._socket.getsockname()[1]
        self._site: web.SockSite | None = None
        self.openings = 0

    @property
    def is_open(self) -> bool:
        return self._site is not None

    async def open(self) -> None:
        if self._site is not None:
            return
        site = web.SockSite(self._runner, self._socket, ssl_context=self._ssl, backlog=1024)
        await site.start()
        self._site = site
        self.openings += 1

    async def close(self) -> None:
        """Stop listening and end every connection (a keep-alive client must reconnect, and is refused)."""
        if self._site is None:
            return
        site, self._site = self._site, None
        await site.stop()  # closes the listening socket
        server = self._runner.server
        for handler in list(server.connections if server is not None else []):
            transport = handler.transport
            if transport is not None and (transport.get_extra_info("sockname") or ("", 0))[1] == self.port:
                handler.force_close()  # only this port's: the admin port shares the application
        self._socket = _reserve(self.port)

    async def release(self) -> None:
        await self.close()
        self._socket.close()
