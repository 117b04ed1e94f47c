"""Cold start of each role: from exec to the first 200 of /readyz (its log and store answer),
and from SIGTERM to exit; beside it, Centrifugo (memory engine, the baseline of the fanout
benchmarks) from exec to its /health. Run by bench/run-startup, which sets the cluster's
environment."""

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


def ready(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def one_start(command, path="/readyz"):
    """`command(port)` is the argument list of a server listening on `port`."""
    port = free_port()
    args = command(port)
    role = " ".join(args[:2])
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not ready(port, path):
        if process.poll() is not None:
            sys.exit(f"{role} exited: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() - started > 60:
            process.kill()
            sys.exit(f"{role} not ready within 60 s")
        time.sleep(0.002)
    to_ready = time.monotonic() - started
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return to_ready, time.monotonic() - stopping


def centrifugo_command(binary, config_file, work):
    config = json.load(open(config_file))

    def command(port):
        config["http_server"]["port"] = port
        path = os.path.join(work, f"centrifugo-{port}.json")
        json.dump(config, open(path, "w"))
        return [binary, "--config", path]

    return command


def main():
    chat, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    centrifugo = sys.argv[4] if len(sys.argv) > 4 else None
    results = {}
    with tempfile.TemporaryDirectory() as data:
        def chat_role(role, *extra):
            return lambda port: [chat, role, "--listen", f"127.0.0.1:{port}", *extra]

        roles = [
            ("ingest", chat_role("ingest"), "/readyz"),
            ("fanout", chat_role("fanout"), "/readyz"),
            ("projector", chat_role("projector"), "/readyz"),
            ("dev", chat_role("dev", "--no-demo", "--data-dir", data), "/readyz"),
        ]
        if centrifugo:
            command = centrifugo_command(centrifugo, "bench/centrifugo.json", data)
            roles.append(("centrifugo", command, "/health"))
        for role, command, path in roles:
            one_start(command, path)  # warm the page cache and the cluster's metadata
            samples = [one_start(command, path) for _ in range(runs)]
            results[role] = {
                "ready_ms": [round(s[0] * 1000, 1) for s in samples],
                "stop_ms": [round(s[1] * 1000, 1) for s in samples],
            }
            ready_p50 = statistics.median(results[role]["ready_ms"])
            print(f"bench: {role}: ready in {ready_p50:.0f} ms (median of {runs})", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
