"""A zkd of a test's own: a standalone server on a free port with the
settings the test needs, started from $ZKD, stopped at the end.

    with ZkdServer({"4lw.commands.whitelist": "*"}) as s:
        zkraw.four_letter(s.addr, "ruok")

Tests that need a server configured differently from run.sh's use it,
so that each does not carry its own copy of start/wait/stop.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import zkraw

ZKD = os.environ.get("ZKD")
START_TIMEOUT = 20.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZkdServer:
    def __init__(self, settings=None, prefix="zkd-test-", binary=None, args=(), work=None, extra_text=""):
        """settings: zoo.cfg keys over the defaults below (None drops one);
        extra_text: lines appended as they are; args: before the config path
        on the command line (-D...); work: the directory (else a new one)."""
        self.binary = binary or ZKD
        self.args = list(args)
        self.dir = work or tempfile.mkdtemp(prefix=prefix)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "zkd.log")
        base = {"tickTime": "2000", "dataDir": os.path.join(self.dir, "data"),
                "clientPort": str(self.port), "clientPortAddress": "127.0.0.1",
                "maxClientCnxns": "0", "4lw.commands.whitelist": "*",
                "admin.enableServer": "false"}
        base.update(settings or {})
        self.cfg_text = "".join("%s=%s\n" % (k, v) for k, v in base.items() if v is not None) + extra_text
        with open(self.cfg_path, "w") as f:
            f.write(self.cfg_text)
        self.proc = None

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, *self.args, self.cfg_path], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if zkraw.four_letter(self.addr, "ruok", timeout=1.0) == "imok":
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("zkd exited at start:\n" + self.log_tail())
            if time.monotonic() > deadline:
                raise RuntimeError("zkd did not answer ruok within %.0fs:\n%s"
                                   % (START_TIMEOUT, self.log_tail()))
            time.sleep(0.05)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n=30):
        try:
            return "".join(self.log_text().splitlines(True)[-n:])
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server with sig; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
