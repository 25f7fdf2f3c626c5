"""Steady mixed traffic from a few client threads, counting what was sent and answered."""
import http.client
import threading
import time

from .support import message_body


class Load:
    """Threads that POST messages (every third one streamed) until stopped.

    `answers` holds (status, x-nexus-request-id, seconds) per request; `failures`
    holds the requests that got no HTTP answer at all.
    """

    def __init__(self, port, threads=3, pause=0.02, headers=None, timeout=15):
        self.port, self.pause, self.headers = port, pause, headers or {}
        self.timeout = timeout
        self.answers, self.failures = [], []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, number):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        count = 0
        while not self.stopping.is_set():
            count += 1
            stream = count % 3 == 0
            started = time.monotonic()
            try:
                conn.request("POST", "/v1/messages",
                             message_body(stream=stream, text=f"load {number} {count}"),
                             {"content-type": "application/json", **self.headers})
                response = conn.getresponse()
                response.read()
                outcome = (response.status, response.getheader("x-nexus-request-id"),
                           time.monotonic() - started)
                with self.lock:
                    self.answers.append(outcome)
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            time.sleep(self.pause)
        conn.close()

    def request_ids(self):
        with self.lock:
            return [request_id for _, request_id, _ in self.answers]

    def statuses(self):
        with self.lock:
            return [status for status, _, _ in self.answers]
