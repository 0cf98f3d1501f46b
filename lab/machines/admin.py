"""/_lab/machines: the lab's machines for tests and the demo (same bearer token as the API).

GET  /_lab/machines                    every machine, and the ssh files' paths
GET  /_lab/machines/NAME               one machine
GET  /_lab/machines/NAME/faults        its faults
PUT  /_lab/machines/NAME/faults        {"sshRefused", "dropAfterSeconds", "latencyMs", "failures", "hostKeyChanged",
                                        "kubeletFails", "bootFails"}
POST /_lab/machines/NAME/power         {"on": false} / {"on": true}
POST /_lab/machines/NAME/reboot        {"bootSeconds": 60} optional: its boot time from now on
"""

from __future__ import annotations

import orjson
from aiohttp import web

from lab import errors
from lab.machines.faults import MachineFaults
from lab.machines.machine import Machine

routes = web.RouteTableDef()


def _ok(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.bad_request("request body must be a JSON object")
    return data


def _machine(request: web.Request) -> Machine:
    fleet = request.app["lab"].fleet
    name = request.match_info["name"]
    machine = fleet.machine(name) if fleet is not None else None
    if machine is None:
        raise errors.not_found("machines", name)
    return machine


@routes.get("/_lab/machines")
async def list_machines(request: web.Request) -> web.Response:
    fleet = request.app["lab"].fleet
    if fleet is None:
        return _ok({"sshConfig": None, "knownHosts": None, "identityFile": None, "machines": {}})
    return _ok(fleet.describe())


@routes.get("/_lab/machines/{name}")
async def get_machine(request: web.Request) -> web.Response:
    return _ok(_machine(request).describe())


@routes.get("/_lab/machines/{name}/faults")
async def get_faults(request: web.Request) -> web.Response:
    return _ok(_machine(request).faults.as_dict())


@routes.put("/_lab/machines/{name}/faults")
async def set_faults(request: web.Request) -> web.Response:
    machine = _machine(request)
    try:
        faults = MachineFaults.from_dict(await _body(request))
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from exc
    await machine.set_faults(faults)
    return _ok(machine.faults.as_dict())


@routes.post("/_lab/machines/{name}/power")
async def power(request: web.Request) -> web.Response:
    machine = _machine(request)
    body = await _body(request)
    if not isinstance(body.get("on"), bool):
        raise errors.bad_request('body must be {"on": true|false}')
    if body["on"]:
        await machine.power_on()
    else:
        await machine.power_off()
    return _ok(machine.describe())


@routes.post("/_lab/machines/{name}/reboot")
async def reboot(request: web.Request) -> web.Response:
    machine = _machine(request)
    body = await _body(request)
    if "bootSeconds" in body:
        seconds = body["bootSeconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise errors.bad_request("bootSeconds must be a number of seconds >= 0")
        machine.boot_seconds = float(seconds)
    await machine.reboot()
    return _ok(machine.describe())
