#!/usr/bin/env python3
"""metrics_client.py — the HTTP client side of tests/e2e/test_metrics.sh
(standard library only: curl may be missing).

  get URL                 print the body of GET URL (exit 1 unless 200)
  unix PATH [REQPATH]     GET REQPATH (default /metrics) over a unix socket;
                          print the status line, then the body
  raw HOST PORT HEX       send the bytes HEX, print the whole response
  slow HOST PORT          connect, send nothing: print the seconds until
                          mgrun closes the connection
  flood HOST PORT N       open N idle connections at once; print how many
                          mgrun closed within 1 s (those past its limit)
  freeport                print a TCP port free on 127.0.0.1 now
"""
import socket
import sys
import time
import urllib.request


def recv_all(s, limit=10 << 20):
    out = b""
    while len(out) < limit:
        b = s.recv(65536)
        if not b:
            break
        out += b
    return out


def main(argv):
    cmd = argv[1]
    if cmd == "get":
        with urllib.request.urlopen(argv[2], timeout=10) as r:
            if r.status != 200:
                return 1
            sys.stdout.write(r.read().decode("utf-8"))
        return 0
    if cmd == "unix":
        path = argv[3] if len(argv) > 3 else "/metrics"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(argv[2])
        s.sendall(("GET %s HTTP/1.1\r\nHost: mgrun\r\n\r\n" % path).encode())
        resp = recv_all(s).decode("utf-8")
        head, _, body = resp.partition("\r\n\r\n")
        print(head.split("\r\n")[0])
        sys.stdout.write(body)
        return 0
    if cmd == "raw":
        s = socket.create_connection((argv[2], int(argv[3])), timeout=10)
        try:
            s.sendall(bytes.fromhex(argv[4]))
        except OSError:
            pass  # closed while we were still sending: read what came
        try:
            sys.stdout.write(recv_all(s).decode("utf-8", "replace"))
        except ConnectionResetError:
            print("(reset)")
        return 0
    if cmd == "slow":
        s = socket.create_connection((argv[2], int(argv[3])), timeout=30)
        t0 = time.monotonic()
        recv_all(s)
        print("%.2f" % (time.monotonic() - t0))
        return 0
    if cmd == "flood":
        n = int(argv[4])
        socks = [socket.create_connection((argv[2], int(argv[3])), timeout=5)
                 for _ in range(n)]
        time.sleep(1)
        closed = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        print(closed)
        for s in socks:
            s.close()
        return 0
    if cmd == "freeport":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
