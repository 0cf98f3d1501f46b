"""`python -m lab up ...`: run a simulated cluster in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from lab import certs, kubeconfig, scenario
from lab.listener import Listener
from lab.machines.namespace import MachineError
from lab.server import Lab, build_app

ADMIN_URL_FILE = "admin_url"  # beside the kubeconfig: where the admin API answers (lab/testing.py reads it)
# The control plane's etcd starts in about a second; a loaded machine may take much longer.
API_START_TIMEOUT = 60.0


def _time_scale(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("--time-scale must be greater than 0 (1 = real time)")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("--port must be between 0 and 65535 (0 = any free port)")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="the bot in the lab with a terminal chat client (see python -m lab demo -h)")
    up = sub.add_parser("up", help="serve a simulated Kubernetes API until interrupted")
    up.add_argument("--scenario", required=True,
                    help=f"a scenario name, a YAML file or large:NODES:PODS_PER_NODE[:MACHINES][:etcd] "
                         f"(known: {', '.join(scenario.available())})")
    up.add_argument("--kubeconfig", required=True, type=Path,
                    help="where to write the kubeconfig; it appears once the API is ready")
    up.add_argument("--port", type=_port, default=0, help="HTTPS port on 127.0.0.1 (default: free)")
    up.add_argument("--time-scale", type=_time_scale, default=1.0,
                    help="multiply grace periods and timeouts by this (0.1 = ten times faster)")
    up.add_argument("--no-machines", action="store_true",
                    help="no node is a machine (machines need root); ssh files are not written")
    return top


async def serve(lab: Lab, kubeconfig_path: Path, port: int) -> None:
    # Beside the kubeconfig, so that whoever cleans up the kubeconfig's directory (LabProcess
    # does) also removes the machines' files of a lab that was killed.
    kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lab-state-", dir=kubeconfig_path.parent.resolve()) as state:
        serving = certs.generate(Path(state))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(serving.cert_file, serving.key_file)
        runner = web.AppRunner(build_app(lab), access_log=None)
        await runner.setup()
        listener = Listener(runner, context, port)
        lab.server_address = f"127.0.0.1:{listener.port}"
        # The admin API (/_lab/ only) on a port of its own: it answers while kube-apiserver is down.
        admin = Listener(runner, context)
        await admin.open()
        lab.admin_port = admin.port
        admin_url_file = kubeconfig_path.parent / ADMIN_URL_FILE
        server = f"https://127.0.0.1:{listener.port}"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if lab.etcd_machine is not None:
                lab.serve_from_etcd(listener)  # the port opens when the control plane runs kube-apiserver
            else:
                await listener.open()
            booting = time.monotonic()
            if lab.fleet is not None:
                await start_machines(lab, Path(state), server, serving, kubeconfig_path)
            if lab.apiserver is not None:
                await lab.apiserver.wait_loaded(0, API_START_TIMEOUT)
                print(f"lab: kube-apiserver up from etcd at {lab.etcd_machine.address}:2379, "
                      f"{time.monotonic() - booting:.1f}s after the machines began to boot", flush=True)
            write_text_atomically(admin_url_file, f"https://127.0.0.1:{admin.port}\n")
            kubeconfig.write_atomically(kubeconfig_path, kubeconfig.render(server, serving.ca_pem, lab.token))
            print(f"lab: scenario {lab.scenario.name} serving at {server}", flush=True)
            print(f"lab: export KUBECONFIG={kubeconfig_path}  (then: kubectl get nodes)", flush=True)
            await stop.wait()
        finally:
            for stale in (kubeconfig_path, admin_url_file):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()  # it would point at a server that is gone
            if lab.apiserver is not None:
                await lab.apiserver.stop()
            if lab.fleet is not None:
                await lab.fleet.stop()
            lab.cluster.stop()
            await listener.release()
            await admin.release()
            await runner.cleanup()


async def start_machines(lab: Lab, state: Path, server: str, serving: certs.ServingCerts,
                         kubeconfig_path: Path) -> None:
    started = time.monotonic()
    await lab.fleet.start(state / "machines", server, lab.token, serving.ca_pem, serving.ca_key_pem, hide=state)
    files = lab.fleet.write_ssh_files(kubeconfig_path, lab.scenario.name)
    print(f"lab: {len(lab.fleet.machines)} machines up in {time.monotonic() - started:.1f}s "
          f"(ssh -F {files.config} NODE)", flush=True)


def write_text_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from lab.demo import main as demo

        return demo(argv[1:])
    args = parser().parse_args(argv)
    # The API's comings and goings (etcd reloads, the static pod starting and stopping) belong in the
    # lab's log; everything else only when it goes wrong.
    logging.basicConfig(level=logging.WARNING, format="lab: %(name)s: %(message)s")
    for name in ("lab.apiserver", "lab.etcd"):
        logging.getLogger(name).setLevel(logging.INFO)
    with contextlib.suppress(FileNotFoundError):
        args.kubeconfig.unlink()  # a stale file would look like a ready lab

    async def run() -> None:
        try:
            lab = Lab(args.scenario, time_scale=args.time_scale, machines=not args.no_machines)
        except scenario.ScenarioError as exc:
            raise SystemExit(f"lab: {exc}") from exc
        try:
            await serve(lab, args.kubeconfig, args.port)
        except (PermissionError, MachineError) as exc:
            raise SystemExit(f"lab: the machines did not start: {exc}") from exc

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
