"""A recording stand-in for a Qdrant cluster's REST API, on a real socket.

No Qdrant server can run on the test machines, so the cluster settings are checked on the wire:
the real qdrant-client builds and sends every request, and this server records them and answers
with well-formed, empty results.  It can also fail a given route a set number of times (5xx,
429, or a dropped connection) to exercise the store's retries.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict | None


class FakeQdrant:
    def __init__(self, peers: int = 3) -> None:
        self.peers = peers
        self.requests: list[Recorded] = []
        self.collections: set[str] = set()
        self.failures: dict[str, list[int]] = defaultdict(list)  # path suffix -> statuses
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append(Recorded(self.command, url.path, parse_qs(url.query), body))
                for suffix, statuses in fake.failures.items():
                    if url.path.endswith(suffix) and statuses:
                        status = statuses.pop(0)
                        if status == 0:  # drop the connection without an answer
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        return self._send(status, {"status": {"error": f"scripted {status}"}})
                self._send(200, {"result": fake.answer(self.command, url.path, body),
                                 "status": "ok", "time": 0.0})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for the loop to look again: 0.5 s each test at the default
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def answer(self, method: str, path: str, body: dict | None) -> object:
        parts = path.strip("/").split("/")
        if path == "/cluster":
            if self.peers == 1:
                return {"status": "disabled"}
            return {"status": "enabled", "peer_id": 1,
                    "peers": {str(i): {"uri": f"http://qdrant-{i}:6335/"}
                              for i in range(1, self.peers + 1)},
                    "raft_info": {"term": 1, "commit": 10, "pending_operations": 0,
                                  "leader": 1, "role": "Leader", "is_voter": True},
                    "consensus_thread_status": {"consensus_thread_status": "working",
                                                "last_update": "2026-11-27T00:00:00Z"},
                    "message_send_failures": {}}
        if parts[-1] == "exists":
            return {"exists": parts[1] in self.collections}
        if method == "PUT" and len(parts) == 2:
            self.collections.add(parts[1])
            return True
        if parts[-1] == "query":
            return {"points": []}
        if parts[-1] == "count":
            return {"count": 0}
        return {"operation_id": len(self.requests), "status": "completed"}

    def sent(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
