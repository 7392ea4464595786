"""A real nats-server for the Python smoke tests: on a free loopback port, with JetStream in a
folder of the test's, and waited for until it takes connections."""
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nats(store, *extra):
    """Starts nats-server (extra: more of its options); returns (process, url) once it listens."""
    port = free_port()
    proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"nats://127.0.0.1:{port}"
