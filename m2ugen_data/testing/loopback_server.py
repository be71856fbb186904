"""A Range-capable HTTP media server on 127.0.0.1, with fault injection, for tests and benchmarks.

ffmpeg (and so yt-dlp's section downloads) seeks inside a remote file with HTTP Range requests; Python's
``http.server`` ignores Range, so tests that exercise the real yt-dlp against loopback need this server. The
faults reproduce what the downloader must survive: missing files (404), a server that answers 503 a few times
before it recovers, and a server that streams slowly enough to kill a client mid-download.
"""

from __future__ import annotations

import mimetypes
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TYPES = {".m4a": "audio/mp4", ".mp4": "video/mp4", ".wav": "audio/wav", ".flac": "audio/flac", ".webm": "video/webm"}
_CHUNK = 64 * 1024


@dataclass
class Faults:
    """Per-file misbehaviour, keyed by file name (e.g. ``"AAAAAAAAAAA.m4a"``)."""

    fail_first: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (status, how many times)
    bytes_per_s: dict[str, float] = field(default_factory=dict)  # name -> throttle for the response body
    status: dict[str, int] = field(default_factory=dict)  # name -> fixed error status (e.g. 403, 410)


class MediaServer:
    """Serve ``root/<name>`` at ``http://127.0.0.1:<port>/media/<name>`` in a background thread."""

    def __init__(self, root: Path, faults: Faults | None = None) -> None:
        self.root = Path(root)
        self.faults = faults or Faults()
        self.hits: Counter[str] = Counter()  # GET/HEAD requests per file name, for assertions
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url_template(self, ext: str = "m4a") -> str:
        """A downloader URL template for ``<ytid>.<ext>`` files served from this server."""
        return f"http://127.0.0.1:{self.port}/media/{{ytid}}.{ext}"

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _fault_status(self, name: str) -> int | None:
        with self._lock:
            self.hits[name] += 1
            if name in self.faults.status:
                return self.faults.status[name]
            status, left = self.faults.fail_first.get(name, (0, 0))
            if left > 0:
                self.faults.fail_first[name] = (status, left - 1)
                return status
        return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Clients (ffmpeg) drop connections once they have their bytes; that is not an error here."""


class _Handler(BaseHTTPRequestHandler):
    server_ref: MediaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read hits instead
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        srv = self.server_ref
        m = re.fullmatch(r"/media/([A-Za-z0-9_.-]+)", self.path.split("?", 1)[0])
        name = m.group(1) if m else ""
        path = srv.root / name
        status = srv._fault_status(name) if name else 404
        if status is None and not path.is_file():
            status = 404
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        rng = _RANGE_RE.match(self.headers.get("Range", ""))
        if rng and (rng.group(1) or rng.group(2)):
            if rng.group(1):
                start = int(rng.group(1))
                end = min(int(rng.group(2)), size - 1) if rng.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(size - int(rng.group(2)), 0)
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            self._send_body(path, start, end, srv.faults.bytes_per_s.get(name))

    def _send_body(self, path: Path, start: int, end: int, rate: float | None) -> None:
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            chunk = min(_CHUNK, max(int(rate / 10), 1024)) if rate else _CHUNK
            try:
                while left > 0:
                    data = fh.read(min(chunk, left))
                    if not data:
                        return
                    self.wfile.write(data)
                    left -= len(data)
                    if rate:
                        time.sleep(len(data) / rate)
            except (BrokenPipeError, ConnectionResetError):
                return
