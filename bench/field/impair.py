#!/usr/bin/env python3
"""The field testbed's impairment proxy: a TCP relay that runs in a camera node's network namespace
between the node and the hub, and adds what the kernel here cannot (it has tc tbf/htb but no netem):

  latency and jitter   each chunk is held for latency/2 +- jitter/2 per direction, in order
  stalls               every --stall-every seconds (+-25 %, seeded) nothing moves for --stall-for s
  outages              from --outage-start, every --outage-every s, for --outage-for s, every
                       connection is cut and new ones are closed at once (a dead uplink)
  throttling           --rate-kbit caps each direction (on top of tc's bandwidth limit)

The schedule of stalls, outages and per-chunk delays is drawn from --seed, so two runs with the same
seed see the same link. Memory is bounded: a direction stops reading while --max-queue bytes wait.
At exit (SIGTERM/SIGINT) it writes its counters as JSON to --stats.
"""
import argparse
import asyncio
import json
import random
import signal
import sys
import time


class Schedule:
    """When the link stalls and when it is out, from t0 on; deterministic in the seed."""

    def __init__(self, a, seed):
        rng = random.Random(seed)
        self.stalls = []
        if a.stall_every > 0 and a.stall_for > 0:
            t = 0.0
            while t < 86400:
                t += a.stall_every * rng.uniform(0.75, 1.25)
                self.stalls.append((t, t + a.stall_for))
        self.outages = []
        if a.outage_every > 0 and a.outage_for > 0:
            t = a.outage_start
            while t < 86400:
                self.outages.append((t, t + a.outage_for))
                t += a.outage_every

    @staticmethod
    def _inside(windows, t):
        for s, e in windows:
            if s > t:
                return None
            if t < e:
                return e
        return None

    def stalled_until(self, t):
        return self._inside(self.stalls, t)

    def out_until(self, t):
        return self._inside(self.outages, t)


class Proxy:
    def __init__(self, a):
        self.a = a
        self.sched = Schedule(a, a.seed)
        self.t0 = time.monotonic()
        self.conns = set()
        self.stats = {"connections": 0, "refused_during_outage": 0, "cut": 0,
                      "bytes_up": 0, "bytes_down": 0, "chunks_up": 0, "chunks_down": 0,
                      "stall_seconds_configured": a.stall_for, "outages_seen": 0}
        self.rng = {"up": random.Random(a.seed * 2 + 1), "down": random.Random(a.seed * 2 + 2)}
        self.was_out = False

    def now(self):
        return time.monotonic() - self.t0

    def delay(self, direction):
        d = (self.a.latency_ms + self.rng[direction].uniform(-1, 1) * self.a.jitter_ms) / 2000.0
        return max(0.0, d)

    async def watch_outages(self):
        while True:
            out = self.sched.out_until(self.now()) is not None
            if out and not self.was_out:
                self.stats["outages_seen"] += 1
                for w in list(self.conns):
                    self.stats["cut"] += 1
                    w.transport.abort()
                self.conns.clear()
            self.was_out = out
            await asyncio.sleep(0.05)

    async def pump(self, reader, writer, direction):
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        queued = [0]
        room = asyncio.Event()
        room.set()
        last_due = [0.0]

        async def rx():
            try:
                while True:
                    await room.wait()
                    data = await reader.read(16384)
                    if not data:
                        break
                    due = max(last_due[0], loop.time() + self.delay(direction))
                    last_due[0] = due
                    queued[0] += len(data)
                    if queued[0] >= self.a.max_queue:
                        room.clear()
                    await queue.put((due, data))
            except (ConnectionError, OSError):
                pass
            await queue.put(None)

        async def tx():
            try:
                while True:
                    item = await queue.get()
                    if item is None:
                        break
                    due, data = item
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    while True:  # a stall holds everything, in order
                        until = self.sched.stalled_until(self.now())
                        if until is None:
                            break
                        await asyncio.sleep(until - self.now())
                    if self.a.rate_kbit > 0:
                        await asyncio.sleep(len(data) * 8 / (self.a.rate_kbit * 1000.0))
                    writer.write(data)
                    await writer.drain()
                    self.stats["bytes_" + direction] += len(data)
                    self.stats["chunks_" + direction] += 1
                    queued[0] -= len(data)
                    if queued[0] < self.a.max_queue:
                        room.set()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(rx(), tx())

    async def handle(self, creader, cwriter):
        if self.sched.out_until(self.now()) is not None:
            self.stats["refused_during_outage"] += 1
            cwriter.transport.abort()
            return
        try:
            ureader, uwriter = await asyncio.open_connection(self.a.upstream_host, self.a.upstream_port)
        except OSError as e:
            print(f"impair: cannot reach {self.a.upstream}: {e}", file=sys.stderr)
            cwriter.close()
            return
        self.stats["connections"] += 1
        self.conns.update({cwriter, uwriter})
        await asyncio.gather(self.pump(creader, uwriter, "up"), self.pump(ureader, cwriter, "down"))
        self.conns.discard(cwriter)
        self.conns.discard(uwriter)

    async def run(self):
        host, port = self.a.listen.rsplit(":", 1)
        server = await asyncio.start_server(self.handle, host, int(port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        watcher = asyncio.create_task(self.watch_outages())
        print(f"impair: {self.a.listen} -> {self.a.upstream} latency {self.a.latency_ms}+-{self.a.jitter_ms} ms, "
              f"stalls {self.a.stall_for} s every ~{self.a.stall_every} s, outages {self.a.outage_for} s every "
              f"{self.a.outage_every} s from {self.a.outage_start} s, seed {self.a.seed}", file=sys.stderr, flush=True)
        await stop.wait()
        watcher.cancel()
        server.close()
        if self.a.stats:
            with open(self.a.stats, "w") as f:
                json.dump(self.stats, f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:4222", help="host:port to accept the node's connections on")
    p.add_argument("--upstream", required=True, help="host:port of the hub's nats-server")
    p.add_argument("--latency-ms", type=float, default=0, help="round-trip latency added")
    p.add_argument("--jitter-ms", type=float, default=0, help="+- round-trip jitter, uniform")
    p.add_argument("--rate-kbit", type=float, default=0, help="cap per direction (0 = none; tc does bandwidth)")
    p.add_argument("--stall-every", type=float, default=0, help="seconds between stalls (0 = none)")
    p.add_argument("--stall-for", type=float, default=0, help="seconds each stall lasts")
    p.add_argument("--outage-start", type=float, default=30, help="seconds until the first outage")
    p.add_argument("--outage-every", type=float, default=0, help="seconds between outage starts (0 = none)")
    p.add_argument("--outage-for", type=float, default=0, help="seconds each outage lasts")
    p.add_argument("--max-queue", type=int, default=256 * 1024, help="bytes held per direction at most")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stats", help="write counters as JSON here at exit")
    a = p.parse_args()
    a.upstream_host, port = a.upstream.rsplit(":", 1)
    a.upstream_port = int(port)
    asyncio.run(Proxy(a).run())


if __name__ == "__main__":
    main()
