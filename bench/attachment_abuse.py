"""Hostile uploads and downloads against one `chat dev`, as a participant could make them:
decompression bombs at once, a PNG carrying a huge compressed colour profile, a GIF
declaring a giant canvas, downloads nobody reads, and a flood of uploads. For each, the
server's resident memory before and at its peak (VmHWM of a fresh process), its CPU time,
and what the requests were answered. Run by bench/run-attachment-abuse on two binaries
(before and after a change) so the figures sit side by side; stdlib only.

    python3 bench/attachment_abuse.py <chat binary> <label>   # JSON lines on stdout
"""

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SECRET = "attachment-abuse-bench-secret-0123456789"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width, height, icc_bytes=0):
    """A 1-bit palette PNG of zero rows: a few KiB that decode to width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    rows = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    extra = b""
    if icc_bytes:
        profile = zlib.compressobj(9)
        block = b"\0" * (1 << 20)
        squeezed = b"".join(profile.compress(block) for _ in range(icc_bytes >> 20))
        extra = chunk(b"iCCP", b"icc\0\0" + squeezed + profile.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra
            + chunk(b"PLTE", b"\0\0\0\xff\xff\xff") + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def gif_canvas(width, height):
    """43 bytes declaring a width x height canvas of one tiny, empty frame."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + b"\0\0\0\xff\xff\xff" + image + b"\x02\x01\x2c\x00\x3b"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chat:
    def __init__(self, binary, env):
        self.binary = binary
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="chat-abuse-")
        args = [binary, "dev", "--no-demo", "--listen", f"127.0.0.1:{self.port}",
                "--internal-listen", f"127.0.0.1:{free_port()}", "--data-dir", self.data]
        environment = dict(os.environ, CHAT_JWT_SECRET=SECRET, CHAT_LOG="warn", **env)
        self.process = subprocess.Popen(args, env=environment, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = self.request("GET", "/v1/openapi.json")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit(f"{binary} did not start")
            time.sleep(0.05)
        status, body = self.request("PUT", "/v1/jobs/abuse/conversation", "jobs",
                                    json.dumps({"client_id": "ana", "worker_id": "bo"}).encode(),
                                    service=True, kind="application/json")
        self.conversation = json.loads(body)["conversation_id"]

    def token(self, user, service=False):
        args = [self.binary, "token", "--sub", user, "--jwt-secret", SECRET]
        return subprocess.check_output(args + (["--service"] if service else [])).decode().strip()

    def request(self, method, path, user=None, body=None, service=False, kind="text/plain"):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"content-type": kind}
        if user:
            headers["authorization"] = "Bearer " + self.token(user, service)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data

    def upload_path(self, name):
        return f"/v1/conversations/{self.conversation}/attachments?name={name}"

    def memory(self):
        """Resident KiB now, and the peak since the process started."""
        fields = dict(line.split(":", 1) for line in open(f"/proc/{self.process.pid}/status"))
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def cpu_seconds(self):
        stat = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / TICKS

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        subprocess.run(["rm", "-rf", self.data], check=False)


def at_once(count, work):
    """Runs `work(i)` on `count` threads together; answers their results."""
    results = [None] * count
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        try:
            results[i] = work(i)
        except OSError as error:
            results[i] = type(error).__name__

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def tally(statuses):
    counts = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def uploads_at_once(chat, body, count, tokens):
    def one(i):
        connection = http.client.HTTPConnection("127.0.0.1", chat.port, timeout=300)
        connection.request("POST", chat.upload_path(f"f{i}.png"), body=body,
                           headers={"authorization": "Bearer " + tokens[i % len(tokens)]})
        status = connection.getresponse().status
        connection.close()
        return status
    return at_once(count, one)


def scenario(label, name, binary, env, act):
    chat = Chat(binary, env)
    try:
        before, _ = chat.memory()
        cpu = chat.cpu_seconds()
        started = time.monotonic()
        outcome = act(chat)
        took = time.monotonic() - started
        now, peak = chat.memory()
        answering, _ = chat.request("GET", f"/v1/conversations/{chat.conversation}", "ana")
        print(json.dumps({
            "binary": label, "scenario": name, "rss_before_kib": before,
            "rss_peak_growth_mib": round((peak - before) / 1024, 1),
            "rss_after_growth_mib": round((now - before) / 1024, 1),
            "cpu_seconds": round(chat.cpu_seconds() - cpu, 2), "seconds": round(took, 2),
            "others_served": answering == 200, **outcome,
        }), flush=True)
    finally:
        chat.stop()


def bombs(body, count):
    def act(chat):
        # Users of their own, so no per-user upload limit hides the memory figure.
        tokens = [chat.token("ana")] + [chat.token("bo")]
        return {"answers": tally(uploads_at_once(chat, body, count, tokens)),
                "upload_bytes": len(body)}
    return act


def unread_downloads(count, size):
    def act(chat):
        status, body = chat.request("POST", chat.upload_path("big.txt"), "ana", b"a" * size)
        if status != 201:
            sys.exit(f"upload refused: {status} {body[:200]}")
        path = json.loads(body)["url"]
        tokens = [chat.token(f"ana") for _ in range(count)]
        sockets = []
        for token in tokens:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", chat.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n".encode())
            sockets.append(s)
        time.sleep(5)
        held, _ = chat.memory()
        time.sleep(40)
        whole = 0
        for s in sockets:
            s.settimeout(5)
            received = 0
            try:
                while chunk := s.recv(1 << 16):
                    received += len(chunk)
            except OSError:
                pass
            whole += received >= size
            s.close()
        return {"downloads": count, "rss_held_after_5s_kib": held,
                "read_whole_after_45s": whole}
    return act


def flood(count):
    def act(chat):
        token = [chat.token("ana")]
        started = time.monotonic()
        statuses = uploads_at_once(chat, b"notes\n", count, token)
        return {"answers": tally(statuses), "flood_seconds": round(time.monotonic() - started, 2)}
    return act


def main():
    binary, label = sys.argv[1], sys.argv[2]
    run = lambda name, act, env=None: scenario(label, name, binary, env or {}, act)
    run("png bomb 12000x7000 x8", bombs(png_bomb(12000, 7000), 8))
    run("png bomb 5000x5000 x32", bombs(png_bomb(5000, 5000), 32))
    run("png 5000x5000 + 250 MiB iCCP x4", bombs(png_bomb(5000, 5000, 250 << 20), 4))
    run("gif canvas 12000x5000 x8", bombs(gif_canvas(12000, 5000), 8))
    run("unread 8 MiB downloads x16", unread_downloads(16, 8 << 20),
        {"CHAT_DOWNLOADS_PER_USER": "16"})
    run("45 uploads at once", flood(45))


if __name__ == "__main__":
    main()
