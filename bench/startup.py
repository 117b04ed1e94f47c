"""Cold start of each role: from exec to the first 200 of /readyz (its log and store answer),
and from SIGTERM to exit. Run by bench/run-startup, which sets the cluster's environment."""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def one_start(chat, role, extra):
    port = free_port()
    args = [chat, role, "--listen", f"127.0.0.1:{port}", *extra]
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not ready(port):
        if process.poll() is not None:
            sys.exit(f"chat {role} exited: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() - started > 60:
            process.kill()
            sys.exit(f"chat {role} not ready within 60 s")
        time.sleep(0.002)
    to_ready = time.monotonic() - started
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return to_ready, time.monotonic() - stopping


def main():
    chat, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    results = {}
    with tempfile.TemporaryDirectory() as data:
        roles = [
            ("ingest", []),
            ("fanout", []),
            ("projector", []),
            ("dev", ["--no-demo", "--data-dir", data]),
        ]
        for role, extra in roles:
            one_start(chat, role, extra)  # warm the page cache and the cluster's metadata
            samples = [one_start(chat, role, extra) for _ in range(runs)]
            results[role] = {
                "ready_ms": [round(s[0] * 1000, 1) for s in samples],
                "stop_ms": [round(s[1] * 1000, 1) for s in samples],
            }
            ready_p50 = statistics.median(results[role]["ready_ms"])
            print(f"bench: chat {role}: ready in {ready_p50:.0f} ms (median of {runs})", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
