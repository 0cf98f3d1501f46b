"""`python -m lab.slack [--port N] [--http-url URL] [--info-file PATH]`: run the emulator standalone.

Prints the base URL on the first line of stdout; with --info-file, writes a JSON file with the
URLs, tokens and ids once ready (atomically) and removes it on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from lab.slack.emulator import SlackEmulator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.slack", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http-url", help="deliver over HTTP to this Request URL instead of Socket Mode")
    p.add_argument("--ack-timeout", type=float, default=3.0)
    p.add_argument("--disconnect-grace", type=float, default=10.0)
    p.add_argument("--info-file", type=Path, help="write URLs, tokens and ids here when ready")
    p.add_argument("--workspace", type=Path, help="JSON file with users, channels and usergroups to use")
    args = p.parse_args(argv)
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    workspace = json.loads(args.workspace.read_text()) if args.workspace else {}
    emu = SlackEmulator(workspace.get("users"), workspace.get("channels"), workspace.get("usergroups"),
                        host=args.host, port=args.port, http_mode=bool(args.http_url), request_url=args.http_url,
                        ack_timeout=args.ack_timeout, disconnect_grace=args.disconnect_grace)
    await emu.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(emu.base_url, flush=True)
    if args.info_file:
        info = emu.describe()
        info["tokens"] = {"bot_token": emu.settings.bot_token, "app_token": emu.settings.app_token,
                          "signing_secret": emu.settings.signing_secret}
        tmp = args.info_file.with_name(args.info_file.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, args.info_file)
    try:
        await stop.wait()
    finally:
        if args.info_file:
            with contextlib.suppress(FileNotFoundError):
                args.info_file.unlink()
        await emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
