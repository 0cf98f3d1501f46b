"""Socket Mode: the WebSocket endpoint that `apps.connections.open` hands out.

On connect the app gets `{"type": "hello", ...}`; envelopes follow; the app acks each by sending
`{"envelope_id": ..., "payload"?: ...}` (on any of its connections). `disconnect()` sends
`{"type": "disconnect", "reason": ...}` and closes the connection `disconnect_grace` seconds later,
as Slack does before it refreshes a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from lab.slack.delivery import EVENTS_API, SLASH_COMMANDS, Attempt, Delivery, wait_event

if TYPE_CHECKING:
    from lab.slack.emulator import SlackEmulator

TICKET_TTL = 60.0
MAX_CONNECTIONS = 10


@dataclass
class Connection:
    id: str
    ws: web.WebSocketResponse
    opened_at: float = field(default_factory=time.time)
    state: str = "open"  # open, draining (told to disconnect), closed
    disconnect_reason: str | None = None
    sent: int = 0
    acks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "opened_at": self.opened_at,
                "disconnect_reason": self.disconnect_reason, "sent": self.sent, "acks": self.acks}


class SocketModeServer:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.connections: dict[str, Connection] = {}
        self.closed: list[Connection] = []
        self.tickets: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self._tasks: set[asyncio.Task] = set()

    # -- apps.connections.open ---------------------------------------------------------------------

    def issue_url(self) -> str:
        now = time.monotonic()
        self.tickets = {t: at for t, at in self.tickets.items() if now - at < TICKET_TTL}
        ticket = str(uuid.uuid4())
        self.tickets[ticket] = now
        host, port = self.emu.host, self.emu.port
        return f"ws://{host}:{port}/link/?ticket={ticket}&app_id={self.emu.workspace.app_id}"

    # -- the WebSocket ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        issued = self.tickets.pop(ticket, None)
        if issued is None or time.monotonic() - issued > TICKET_TTL:
            return web.Response(status=401, text="invalid_ticket")
        if len(self.live()) >= MAX_CONNECTIONS:
            return web.Response(status=429, text="too_many_websockets")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, timeout=1.0)
        await ws.prepare(request)
        conn = Connection(id=f"conn-{next(self._ids)}", ws=ws)
        self.connections[conn.id] = conn
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": len(self.live()),
            "debug_info": {"host": "applink-lab-1", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.emu.workspace.app_id},
        }))
        self.emu.changed()
        pinger = asyncio.get_running_loop().create_task(self._ping(conn))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and "envelope_id" in data:
                    conn.acks += 1
                    await self.emu.deliveries.ack_envelope(data["envelope_id"], data.get("payload"), conn.id)
        finally:
            pinger.cancel()
            conn.state = "closed"
            self.connections.pop(conn.id, None)
            self.closed.append(conn)
            self.emu.changed()
        return ws

    async def _ping(self, conn: Connection) -> None:
        """Slack pings its Socket Mode clients; the client answers with a pong."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not conn.ws.closed:
                await asyncio.sleep(self.emu.settings.ping_interval)
                await conn.ws.ping(f"{time.time():.6f}".encode())

    def live(self) -> list[Connection]:
        return [c for c in self.connections.values() if c.state != "closed" and not c.ws.closed]

    def pick(self) -> Connection | None:
        """A fresh connection in turn; one that was told to disconnect only if there is nothing else."""
        live = self.live()
        fresh = [c for c in live if c.state == "open"] or live
        if not fresh:
            return None
        return fresh[next(self._rr) % len(fresh)]

    async def attempt(self, d: Delivery, attempt: Attempt, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        envelope_id = str(uuid.uuid4())
        attempt.envelope_id = envelope_id
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "payload": d.payload, "type": d.kind,
                                    "accepts_response_payload": d.kind == SLASH_COMMANDS}
        if d.kind == EVENTS_API:
            envelope["retry_attempt"] = attempt.number
            envelope["retry_reason"] = attempt.retry_reason
        self.emu.deliveries.register_envelope(envelope_id, d)
        conn = self.pick()
        while conn is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                attempt.outcome = "no_connection"
                return
            await self.emu.wait_changed(remaining)
            conn = self.pick()
        attempt.transport = f"socket:{conn.id}"
        try:
            await conn.ws.send_str(json.dumps(envelope))
            conn.sent += 1
        except (ConnectionError, RuntimeError) as e:
            attempt.outcome = f"send_failed: {e}"
        self.emu.changed()
        await wait_event(d.acked, deadline - loop.time())

    # -- disconnects -----------------------------------------------------------------------------

    async def disconnect(self, reason: str = "refresh_requested", connection_id: str | None = None,
                         grace: float | None = None) -> list[str]:
        """Send `{"type": "disconnect"}` to one or all connections; close them after `grace` seconds."""
        grace = self.emu.settings.disconnect_grace if grace is None else grace
        targets = [c for c in self.live() if connection_id in (None, c.id)]
        for conn in targets:
            conn.state = "draining"
            conn.disconnect_reason = reason
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(json.dumps({"type": "disconnect", "reason": reason,
                                                   "debug_info": {"host": "applink-lab-1"}}))
            task = asyncio.get_running_loop().create_task(self._close_later(conn, grace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.emu.changed()
        return [c.id for c in targets]

    async def _close_later(self, conn: Connection, grace: float) -> None:
        await asyncio.sleep(grace)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=1001, message=b"disconnect")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"server shutdown")

    def clear(self) -> None:
        self.closed.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in [*self.closed, *self.connections.values()]]
