"""A small TCP proxy that adds latency, to measure OpsDesk as remote staff on a VPN see it.

``LatencyProxy(target_port, one_way_ms=25)`` listens on 127.0.0.1 and forwards to the target on 127.0.0.1, delaying
every chunk by ``one_way_ms`` in each direction (so 25 gives a 50 ms round trip), keeping byte order. It runs its
own asyncio loop in a process of its own (a VPN's delay is in the network, not in the app: a proxy thread inside
the measured process took the GIL from the GUI thread whose stalls the benchmarks measure, 34 ms of a 63 ms stall
in one run) and only ever connects to the loopback address.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class LatencyProxy:
    def __init__(self, target_port: int, one_way_ms: float = 25.0, target_host: str = "127.0.0.1") -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the latency proxy only forwards to this machine")
        self.target = (target_host, target_port)
        self.delay = one_way_ms / 1000.0
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> int:
        # A plain child interpreter (not multiprocessing, which would import the measuring script again).
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency_proxy",
                self.target[0],
                str(self.target[1]),
                str(self.delay),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the latency proxy did not start")
        self.port = int(line)
        return self.port

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(5)
            self._process = None


def _serve(target: tuple[str, int], delay: float) -> None:
    """(The proxy's process.) Listen, print the port, forward until terminated."""
    forwarder = _Forwarder(target, delay)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(asyncio.start_server(forwarder.handle, "127.0.0.1", 0))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


class _Forwarder:
    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def pump() -> None:
            while True:
                data = await reader.read(65536)
                await queue.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(pump(), deliver())


if __name__ == "__main__":
    _serve((sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))
