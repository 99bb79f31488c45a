"""A terminal for end-to-end tests: runs capsa on the slave side of a real
pseudo-terminal pair, types into the master and reads what appears."""
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time


class Term:
    def __init__(self, capsa_bin, args, env, rows=24, cols=80):
        self.master, self.slave = os.openpty()
        self.set_size(rows, cols)
        # the terminal as capsa found it, to check it is restored
        self.saved = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([capsa_bin, *map(str, args)], stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, env=env, start_new_session=True)
        self.buf = b""

    def set_size(self, rows, cols):
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows, cols):
        self.set_size(rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def send(self, data):
        os.write(self.master, data if isinstance(data, bytes) else data.encode())

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            return False
        self.buf += chunk
        return bool(chunk)

    def expect(self, pattern, timeout=20):
        """Waits until pattern (a regex on bytes) appears after what earlier
        expects consumed; returns the match."""
        rx = re.compile(pattern if isinstance(pattern, bytes) else pattern.encode())
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.time()
            if left <= 0 or (not self._read(min(left, 0.5)) and self.proc.poll() is not None and
                             not self._read(0.1)):
                if rx.search(self.buf):
                    continue
                raise AssertionError(f"{pattern!r} not seen; terminal shows {self.buf[-2000:]!r}, "
                                     f"capsa {'exited ' + str(self.proc.returncode) if self.proc.poll() is not None else 'running'}")

    def wait(self, timeout=30):
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"capsa did not exit; terminal shows {self.buf[-2000:]!r}")
        while self._read(0.05):
            pass
        return self.proc.returncode

    def restored(self):
        """true when the terminal is in the mode capsa found it in."""
        now = termios.tcgetattr(self.slave)
        return now[:6] == self.saved[:6]

    def is_raw(self):
        lflag = termios.tcgetattr(self.slave)[3]
        return not (lflag & termios.ICANON) and not (lflag & termios.ECHO)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)
