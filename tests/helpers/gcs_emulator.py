"""A real GCS server on localhost for the gs:// tests: gcp-storage-emulator, in memory.

tensorstore reaches it through two documented environment variables, the same
ones a user sets to repeat the check (docs/training.md, "Checkpoints on gs://"):

    TENSORSTORE_GCS_HTTP_URL=http://127.0.0.1:<port>   # instead of storage.googleapis.com
    GOOGLE_AUTH_TOKEN_FOR_TESTING=<any token>           # no credential lookup

The emulator (2026.7.19) serves the GCS JSON API's uploads, media downloads
with byte ranges and prefix listings, but leaves out three parts of it that
tensorstore's gcs driver relies on: `startOffset`/`endOffset` on object
listings (tensorstore lists key ranges with them, never with `prefix`), the
`ifGenerationMatch`/`ifGenerationNotMatch` preconditions, and the
`x-goog-generation` header of a download. `_complete_the_api` adds those to the
emulator's handlers, as the GCS documentation defines them, so the server
answers as GCS does; without them a listing returns the whole bucket.
"""

import contextlib
import json
import logging
import socket
import urllib.request
from http import HTTPStatus
from typing import Iterator

URL_VARIABLE = "TENSORSTORE_GCS_HTTP_URL"
TOKEN_VARIABLE = "GOOGLE_AUTH_TOKEN_FOR_TESTING"
_COMPLETED = False


def _query(request, name):
  values = request.query.get(name)
  return values[0] if values else None


def _complete_the_api() -> None:
  global _COMPLETED
  if _COMPLETED:
    return
  from gcp_storage_emulator import server  # pylint: disable=g-import-not-at-top
  from gcp_storage_emulator.exceptions import NotFound  # pylint: disable=g-import-not-at-top
  from gcp_storage_emulator.handlers import objects  # pylint: disable=g-import-not-at-top

  def generation(storage, bucket, name):
    try:
      return int(storage.get_file_obj(bucket, name).get("generation") or 0)
    except NotFound:
      return 0  # GCS: generation 0 is "no such object"

  def preconditions_hold(request, response, storage, name, reading):
    match, not_match = _query(request, "ifGenerationMatch"), _query(request, "ifGenerationNotMatch")
    if name is None or (match is None and not_match is None):
      return True
    current = generation(storage, request.params["bucket_name"], name)
    if match is not None and current != int(match):
      response.status = HTTPStatus.PRECONDITION_FAILED
      return False
    if not_match is not None and current == int(not_match):
      response.status = HTTPStatus.NOT_MODIFIED if reading else HTTPStatus.PRECONDITION_FAILED
      return False
    return True

  listing, get, download, insert, delete = (
    objects.ls,
    objects.get,
    objects.download,
    objects.insert,
    objects.delete,
  )

  def ls(request, response, storage, *args, **kwargs):
    start, end = _query(request, "startOffset"), _query(request, "endOffset")
    if start is None and end is None:
      return listing(request, response, storage, *args, **kwargs)
    try:
      files, prefixes = storage.get_file_list(
        request.params["bucket_name"],
        _query(request, "prefix"),
        _query(request, "delimiter"),
        _query(request, "matchGlob"),
      )
    except NotFound:
      response.status = HTTPStatus.NOT_FOUND
      return None
    inside = lambda name: (start is None or name >= start) and (end is None or name < end)
    response.json(
      {
        "kind": "storage#objects",
        "prefixes": [p for p in prefixes if inside(p)],
        "items": [f for f in files if inside(f["name"])],
      }
    )
    return None

  def download_with_generation(request, response, storage, *args, **kwargs):
    name = request.params.get("object_id")
    if not preconditions_hold(request, response, storage, name, True):
      return None
    download(request, response, storage, *args, **kwargs)
    if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
      obj = storage.get_file_obj(request.params["bucket_name"], name)
      response["x-goog-generation"] = str(obj.get("generation") or 0)
      response["x-goog-metageneration"] = str(obj.get("metageneration") or 1)
    return None

  def guarded(handler, name_of, reading):
    def handle(request, response, storage, *args, **kwargs):
      if not preconditions_hold(request, response, storage, name_of(request), reading):
        return None
      return handler(request, response, storage, *args, **kwargs)

    return handle

  replacements = {
    listing: ls,
    download: download_with_generation,
    get: guarded(get, lambda r: r.params.get("object_id"), True),
    insert: guarded(insert, lambda r: _query(r, "name"), False),
    delete: guarded(delete, lambda r: r.params.get("object_id"), False),
  }
  for _, methods in server.HANDLERS:  # the route table holds the functions themselves
    for method, handler in list(methods.items()):
      if handler in replacements:
        methods[method] = replacements[handler]
  # `get(alt=media)` and the upload fallback find these by module attribute.
  objects.ls, objects.download = replacements[listing], replacements[download]
  objects.get, objects.insert = replacements[get], replacements[insert]
  objects.delete = replacements[delete]
  _COMPLETED = True


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def running(bucket: str) -> Iterator[str]:
  """Starts the emulator on a free localhost port with `bucket`; yields its URL; stops it."""
  from gcp_storage_emulator.server import create_server  # pylint: disable=g-import-not-at-top

  logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)  # 404s log as errors
  _complete_the_api()
  port = _free_port()
  server = create_server("127.0.0.1", port, in_memory=True)
  server._api.daemon = True  # pylint: disable=protected-access  # never holds up exit
  server.start()
  url = f"http://127.0.0.1:{port}"
  try:
    request = urllib.request.Request(
      f"{url}/storage/v1/b?project=test",
      data=json.dumps({"name": bucket}).encode(),
      headers={"Content-Type": "application/json"},
      method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
      assert response.status == 200
    yield url
  finally:
    server.stop()
