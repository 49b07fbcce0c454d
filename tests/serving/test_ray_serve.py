"""`python -m prompt_tuning.serve --ray_replicas=2`: two Ray Serve replicas on a local Ray
instance share one prompt table. A prompt added through the API is served by both
replicas, as the same vectors loaded at start are; a prompt removed is gone from both;
nothing compiles after ready; SIGTERM stops the whole instance."""

import concurrent.futures
import io
import json
import os
import signal
import subprocess
import sys
import time

import httpx2 as httpx
import numpy as np
import pytest

from tests import conftest
from tests.helpers import doc_blocks
from tests.serving import test_server as single

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TEXTS = single.TEXTS[:4]


def _post(http, model: str, text: str) -> httpx.Response:
  return http.post(
    "/v1/completions", json={"model": model, "prompt": text, "max_tokens": 4, "temperature": 0}
  )


def _each_replica(http, send, want: int = 2, tries: int = 12) -> dict[str, list]:
  """Rounds of 16 concurrent `send(i)` until `want` replicas have answered: replica -> answers."""
  seen: dict[str, list] = {}
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    for _ in range(tries):
      for r in pool.map(send, range(16)):
        seen.setdefault(r.headers["x-replica"], []).append(r)
      if len(seen) >= want:
        break
  return seen


def _metric(text: str, name: str) -> float:
  return float(next(l for l in text.splitlines() if l.startswith(name + " ")).split()[-1])


def test_two_replicas_serve_one_shared_table(request, tmp_path):
  (start,) = doc_blocks.run_by(request, "docs/serving.md")
  # The documented command's prompt, `make demo`'s MODEL_DIR (its numpy checkpoint).
  vectors = single._prompt(20, 3)
  step = tmp_path / "demo_prompt" / "numpy_checkpoints" / "checkpoint_1500"
  step.mkdir(parents=True)
  np.save(step / "encoder.prompt.prompt.npy", vectors)
  port = single._free_port()
  script = start.replace("build/demo/prompt", str(tmp_path / "demo_prompt"))
  script = script.replace("8000", str(port))
  command = "\n".join(l for l in script.splitlines() if not l.startswith("#")).strip()
  log = open(tmp_path / "server.log", "w+")
  env = dict(
    single.ENV,
    PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
    RAY_USAGE_STATS_ENABLED="0",
  )
  server = subprocess.Popen(
    ["sh", "-e", "-c", f"exec {command}"],
    cwd=conftest.REPO_ROOT,
    env=env,
    stdout=log,
    stderr=subprocess.STDOUT,
    text=True,
  )
  http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
  try:
    deadline = time.time() + 300
    while "serve: ready" not in single._tail(log):
      assert server.poll() is None, single._tail(log)
      assert time.time() < deadline, "never ready:\n" + single._tail(log)
      time.sleep(0.5)

    # The same vectors, uploaded through one replica, as 'added'.
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    r = http.put(
      "/v1/prompts/added",
      content=buffer.getvalue(),
      headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    uploaded_on = r.headers["x-replica"]

    # Each replica answers for the uploaded prompt (not only the one it went to) what
    # each answers for the same vectors loaded at start.
    answers: dict[tuple, set] = {}
    for model in ("added", "supersense"):
      seen = _each_replica(http, lambda i, m=model: _post(http, m, TEXTS[i % len(TEXTS)]))
      assert len(seen) == 2, f"one replica answered every request for {model}: {sorted(seen)}"
      for responses in seen.values():
        for r in responses:
          assert r.status_code == 200, r.text
          text = json.loads(r.request.content)["prompt"]
          answers.setdefault((model, text), set()).add(r.json()["choices"][0]["text"])
    assert uploaded_on in seen
    for text in TEXTS:
      start, added = answers[("supersense", text)], answers[("added", text)]
      assert len(start) == 1 and start == added, (text, start, added)

    # Nothing compiled after ready, on either replica.
    metrics = _each_replica(http, lambda i: http.get("/metrics"))
    assert len(metrics) == 2
    for replica, responses in metrics.items():
      assert _metric(responses[0].text, "prompt_server_compilations_since_ready") == 0, replica

    # Removed through one replica: gone from both.
    assert http.delete("/v1/prompts/added").status_code == 200
    gone = _each_replica(http, lambda i: _post(http, "added", TEXTS[0]))
    assert len(gone) == 2
    for responses in gone.values():
      assert {r.status_code for r in responses} == {404}
      assert responses[0].json()["error"]["code"] == "model_not_found"

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 128 + signal.SIGTERM, single._tail(log)
    assert "serve: stopped" in single._tail(log)
  finally:
    http.close()
    if server.poll() is None:
      server.kill()
      server.wait(timeout=30)
    log.close()
