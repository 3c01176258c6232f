"""A stand-in for the Hugging Face hub's file API on 127.0.0.1, so that ``huggingface_hub`` runs unchanged.

It answers the requests that ``HfApi.model_info`` and ``hf_hub_download`` send (read in
huggingface_hub 1.x's ``hf_api.py``, ``file_download.py`` and ``utils/_http.py``):

- ``GET /api/models/<repo>[/revision/<rev>]``: ``{"id", "sha", "siblings"}``, each sibling with
  ``rfilename``, ``size``, ``blobId`` and, for LFS files, ``lfs: {sha256, size, pointerSize}``;
- ``HEAD|GET /<repo>/resolve/<rev>/<file>``: a small (git) file answers 200 with its body, an
  ``ETag`` (its git blob id), ``Content-Length`` and ``X-Repo-Commit``; an LFS file answers 302 to
  ``http://localhost:<port>/cdn/<sha256>``, with ``X-Linked-Etag`` (the sha256), ``X-Linked-Size``
  and ``X-Repo-Commit``. The client follows redirects only on the hub's own host name, and
  ``localhost`` is another name than ``127.0.0.1``, so it treats the target as the hub's CDN;
- ``GET /cdn/<sha256>``: the LFS file, honouring ``Range: bytes=N-`` (206) for resumed downloads.

Unknown repositories, revisions and files answer 404 with the hub's ``X-Error-Code``. Every
request is recorded (:attr:`HubStandin.requests`), and :meth:`HubStandin.cut_next_download` makes
the next download of a file stop half-way, as a dropped connection does.

Example (not run as a doctest: it binds a port):
    with HubStandin() as hub:
        hub.add_file("org/model", "config.json", b"{}")
        hf_hub_download("org/model", "config.json", endpoint=hub.endpoint, local_dir="/tmp/m")
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class HubFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        """What git stores for an LFS file, in place of its content."""
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def blob_id(self) -> str:
        """The git object id of what git stores: the content, or the pointer of an LFS file."""
        stored = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()


@dataclass
class HubRepo:
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)


@dataclass(frozen=True)
class HubRequest:
    method: str
    path: str
    range: str | None


class HubStandin:
    """Model repositories served with the hub's file API; use as a context manager.

    Files larger than ``lfs_from`` bytes (or added with ``lfs=True``) are served as LFS files.
    """

    def __init__(self, lfs_from: int = 1024):
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[HubRequest] = []
        self.lfs_from = lfs_from
        self._cuts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_file(self, repo: str, filename: str, data: bytes, *, lfs: bool | None = None) -> HubFile:
        """Add (or replace) a file; each change makes a new commit of ``repo``."""
        entry = self.repos.setdefault(repo, HubRepo(commit=""))
        entry.files[filename] = HubFile(data, len(data) > self.lfs_from if lfs is None else lfs)
        names = json.dumps({name: f.blob_id for name, f in sorted(entry.files.items())})
        entry.commit = hashlib.sha1(f"{repo}:{names}".encode()).hexdigest()
        return entry.files[filename]

    def cut_next_download(self, repo: str, filename: str, after_bytes: int) -> None:
        """Close the connection after ``after_bytes`` of the next full download of this file."""
        with self._lock:
            self._cuts[self.repos[repo].files[filename].sha256] = after_bytes

    def downloads(self) -> list[HubRequest]:
        """The recorded requests that carried file content (GET of a resolve or CDN URL)."""
        return [r for r in self.requests if r.method == "GET" and ("/resolve/" in r.path or r.path.startswith("/cdn/"))]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_cut(self, sha256: str) -> int | None:
        with self._lock:
            return self._cuts.pop(sha256, None)

    def _find_sha256(self, sha256: str) -> HubFile | None:
        for repo in self.repos.values():
            for hub_file in repo.files.values():
                if hub_file.lfs and hub_file.sha256 == sha256:
                    return hub_file
        return None


_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")


def _handler_for(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool, cut: int | None = None) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data if cut is None else data[:cut])
                self.wfile.flush()
            if cut is not None:
                self.close_connection = True

        def _error(self, status: int, code: str, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self._send(status, {"X-Error-Code": code, "X-Error-Message": message,
                                "Content-Type": "application/json"}, data, True)

        def _repo(self, name: str, rev: str | None) -> HubRepo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {name} not found")
            elif rev not in (None, "main", repo.commit):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            return repo

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub._lock:
                hub.requests.append(HubRequest(self.command, path, self.headers.get("Range")))
            if match := _INFO.match(path):
                repo = self._repo(match["repo"], match["rev"])
                if repo is not None:
                    self._send(200, {"Content-Type": "application/json"}, self._info(match["repo"], repo), body)
            elif match := _RESOLVE.match(path):
                repo = self._repo(match["repo"], match["rev"])
                if repo is None:
                    return
                hub_file = repo.files.get(match["file"])
                if hub_file is None:
                    self._error(404, "EntryNotFound", f"{match['file']} does not exist on {match['rev']}")
                elif hub_file.lfs:
                    self._send(302, {"Location": f"http://localhost:{hub.port}/cdn/{hub_file.sha256}",
                                     "X-Repo-Commit": repo.commit, "X-Linked-Etag": f'"{hub_file.sha256}"',
                                     "X-Linked-Size": str(len(hub_file.data)), "ETag": f'"{hub_file.blob_id}"'},
                               b"", body)
                else:
                    self._send(200, {"X-Repo-Commit": repo.commit, "ETag": f'"{hub_file.blob_id}"'},
                               hub_file.data, body)
            elif match := _CDN.match(path):
                hub_file = hub._find_sha256(match["sha"])
                if hub_file is None:
                    self._error(404, "EntryNotFound", "no such object")
                    return
                start = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if start:
                    offset, total = int(start[1]), len(hub_file.data)
                    self._send(206, {"Content-Range": f"bytes {offset}-{total - 1}/{total}", "ETag": f'"{hub_file.sha256}"'},
                               hub_file.data[offset:], body)
                else:
                    cut = hub._take_cut(hub_file.sha256) if body else None
                    self._send(200, {"ETag": f'"{hub_file.sha256}"'}, hub_file.data, body, cut=cut)
            else:
                self._error(404, "EntryNotFound", f"no route for {path}")

        @staticmethod
        def _info(name: str, repo: HubRepo) -> bytes:
            siblings = []
            for filename, hub_file in sorted(repo.files.items()):
                sibling = {"rfilename": filename, "size": len(hub_file.data), "blobId": hub_file.blob_id}
                if hub_file.lfs:
                    sibling["lfs"] = {"sha256": hub_file.sha256, "size": len(hub_file.data), "pointerSize": len(hub_file.pointer)}
                siblings.append(sibling)
            return json.dumps({"id": name, "modelId": name, "sha": repo.commit, "private": False,
                               "siblings": siblings}).encode()

    return Handler
