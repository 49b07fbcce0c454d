"""`python -m prompt_tuning.serve` as a client meets it: a real server, the official openai
client and plain HTTP, checked against `python -m prompt_tuning.infer` for each prompt.

One server for the module (the bundled tiny model; prompts of 3, 7 and 20 vectors; an API
key; a queue of 80 rows), started beside the three infer runs that are the reference.
"""

import base64
import concurrent.futures
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import numpy as np
import openai
import pytest

from prompt_tuning.checkpoints import peft
from tests import conftest
from tests.helpers import doc_blocks

pytestmark = pytest.mark.slow

KEY = "test-key"
LENGTHS = {"inputs": 48, "targets": 4}  # docs/serving.md's: its server reuses the compilations
PROMPTS = {"short": 3, "mid": 7, "long": 20}
EMBED = 128  # the bundled tiny model's width
TEXTS = [
  "noun: dog",
  "verb: run quickly across the field",
  "noun: a piece of furniture with a flat top",
  "adjective: happy",
  "noun: the capital of a country",
  "verb: to think about something carefully before deciding",
]
MODEL_FLAGS = [
  "--gin_file=configs/models/wordnet_tiny_prompt.gin",
  "--gin.INITIAL_CHECKPOINT_PATH=@prompt_tuning.data.wordnet.bundled_checkpoint()",
  f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _prompt(length: int, seed: int) -> np.ndarray:
  return (np.random.default_rng(seed).normal(size=(length, EMBED)) * 0.5).astype(np.float32)


class Server:
  def __init__(self, process, port, log):
    self.process, self.url, self.log = process, f"http://127.0.0.1:{port}", log
    self.http = httpx.Client(
      base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )
    self.client = openai.OpenAI(base_url=self.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    self.saw_503 = False

  def complete(self, **body):
    return self.http.post("/v1/completions", json=body)

  def compilations_since_ready(self) -> float:
    text = self.http.get("/metrics").text
    line = next(
      l for l in text.splitlines() if l.startswith("prompt_server_compilations_since_ready")
    )
    return float(line.split()[-1])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """The server and, for each prompt, what `prompt_tuning.infer` predicts for TEXTS."""
  tmp = tmp_path_factory.mktemp("serve")
  files = {}
  for i, (name, length) in enumerate(PROMPTS.items()):
    files[name] = str(tmp / f"{name}.npy")
    np.save(files[name], _prompt(length, i))
  (tmp / "in.jsonl").write_text("".join(json.dumps({"inputs": t}) + "\n" for t in TEXTS))
  port = _free_port()
  log = open(tmp / "server.log", "w+")
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "prompt_tuning.serve",
      *MODEL_FLAGS,
      "--gin_file=configs/runs/prompt_serve.gin",
      f"--gin.PROMPT_FILES={files}",
      f"--port={port}",
      f"--api_key={KEY}",
      "--max_queue=80",
      "--batch_sizes=1,8,32",
    ],
    cwd=conftest.REPO_ROOT,
    env=ENV,
    stdout=log,
    stderr=subprocess.STDOUT,
    text=True,
  )
  infers = {
    name: subprocess.Popen(
      [
        sys.executable,
        "-m",
        "prompt_tuning.infer",
        *MODEL_FLAGS[:1],
        "--gin_file=configs/prompts/from_file.gin",
        "--gin_file=configs/runs/prompt_infer.gin",
        *MODEL_FLAGS[1:],
        f"--gin.PROMPT_FILE='{path}'",
        "--gin.BATCH_SIZE=8",
        f"--input_file={tmp / 'in.jsonl'}",
        f"--output_file={tmp / name}.out.jsonl",
      ],
      cwd=conftest.REPO_ROOT,
      env=ENV,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for name, path in files.items()
  }
  s = Server(server, port, log)
  try:
    deadline = time.time() + 240
    while True:
      assert server.poll() is None, _tail(log)
      try:
        status = s.http.get("/health", timeout=5).status_code
      except httpx.TransportError:
        status = None
      s.saw_503 |= status == 503
      if status == 200:
        break
      assert time.time() < deadline, "the server never became ready:\n" + _tail(log)
      time.sleep(0.05)
    expected = {}
    for name, proc in infers.items():
      out, _ = proc.communicate(timeout=240)
      assert proc.returncode == 0, out[-3000:]
      lines = (tmp / f"{name}.out.jsonl").read_text().splitlines()
      expected[name] = [json.loads(l)["prediction"] for l in lines]
    yield s, expected, tmp
  finally:
    if server.poll() is None:
      server.kill()
    for proc in infers.values():
      if proc.poll() is None:
        proc.kill()
    log.close()


def _json_values(text: str) -> list:
  """The JSON values curl printed one after another (no newline between them)."""
  values, decoder, i = [], json.JSONDecoder(), 0
  while i < len(text.rstrip()):
    value, i = decoder.raw_decode(text, i)
    values.append(value)
    while i < len(text) and text[i].isspace():
      i += 1
  return values


def _batch_rows(s) -> tuple[float, float]:
  """(rows decoded, batches) so far, from /metrics."""
  text = s.http.get("/metrics").text
  value = lambda name: float(next(l for l in text.splitlines() if l.startswith(name)).split()[-1])
  return value("prompt_server_batch_rows_sum"), value("prompt_server_batch_rows_count")


def _metric(s, name: str) -> float:
  line = next(l for l in s.http.get("/metrics").text.splitlines() if l.startswith(name + " "))
  return float(line.split()[-1])


def _serve_fails(*flags) -> subprocess.CompletedProcess:
  """`python -m prompt_tuning.serve` on the tiny model with `flags`, run to its end."""
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "prompt_tuning.serve",
      *MODEL_FLAGS,
      "--gin_file=configs/runs/prompt_serve.gin",
      *flags,
    ],
    cwd=conftest.REPO_ROOT,
    env=ENV,
    capture_output=True,
    text=True,
    timeout=120,
  )


def _tail(log) -> str:
  log.flush()
  log.seek(0)
  return log.read()[-3000:]


def test_ready_only_after_loading_and_answers_like_infer_for_every_prompt_with_72_in_flight(served):
  s, expected, _ = served
  assert s.saw_503, "/health never answered 503 while the model loaded"
  # The compilation counter counts (else "nothing compiled after ready" says nothing): the
  # 3 batch sizes x 3 encoder lengths and the table's update, at least, before ready.
  assert _metric(s, "prompt_server_compilations") >= 10
  names = [m.id for m in s.client.models.list().data]
  assert sorted(names) == sorted(PROMPTS)
  # The predictions differ between prompts (else "each prompt's answer" says nothing).
  assert len({tuple(v) for v in expected.values()}) == len(PROMPTS)
  jobs = [(name, i) for _ in range(4) for name in PROMPTS for i in range(len(TEXTS))]  # 72
  assert len(jobs) >= 72

  def ask(job):
    name, i = job
    r = s.client.completions.create(
      model=name, prompt=TEXTS[i], temperature=0, max_tokens=LENGTHS["targets"]
    )
    return r.choices[0].text

  before = s.http.get("/metrics").text
  with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
    answers = list(pool.map(ask, jobs))
  for (name, i), text in zip(jobs, answers):
    assert text == expected[name][i], (name, TEXTS[i])
  # They were decoded in shared batches, not one at a time, and nothing compiled.
  after = s.http.get("/metrics").text
  rows = lambda text, kind: float(
    next(l for l in text.splitlines() if l.startswith(f"prompt_server_batch_rows_{kind}")).split()[
      -1
    ]
  )
  batches = rows(after, "count") - rows(before, "count")
  assert rows(after, "sum") - rows(before, "sum") == len(jobs)
  assert batches < len(jobs) / 2, f"{len(jobs)} rows in {batches} batches"
  assert s.compilations_since_ready() == 0


def test_a_list_of_prompts_streaming_logprobs_stop_and_usage(served):
  s, expected, _ = served
  r = s.client.completions.create(model="mid", prompt=TEXTS[:3], temperature=0, logprobs=3)
  assert [c.text for c in r.choices] == expected["mid"][:3]
  assert [c.index for c in r.choices] == [0, 1, 2]
  for c in r.choices:
    lp = c.logprobs
    assert "".join(lp.tokens) == c.text
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == len(lp.text_offset)
    for token, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
      assert len(top) <= 3 and top[token] == pytest.approx(chosen, abs=1e-6)  # found by name
      assert max(top.values()) == pytest.approx(chosen, abs=1e-5)  # greedy: the likeliest
    assert lp.text_offset[0] == len(TEXTS[c.index])  # OpenAI's: from the prompt's start
  assert r.usage.completion_tokens == sum(len(c.logprobs.tokens) for c in r.choices)
  assert (
    r.usage.prompt_tokens > 3
    and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
  )
  stream = s.client.completions.create(model="long", prompt=TEXTS[1], temperature=0, stream=True)
  chunks = list(stream)
  assert "".join(c.choices[0].text for c in chunks) == expected["long"][1]
  assert chunks[-1].choices[0].finish_reason in ("stop", "length")
  # A stop sequence ends the text before it (the answer's last two characters, found first
  # at some index: the text is everything before it).
  full = expected["short"][2]
  assert len(full) >= 2, full
  cut = full[-2:]
  r = s.client.completions.create(model="short", prompt=TEXTS[2], temperature=0, stop=[cut])
  assert r.choices[0].text == full[: full.find(cut)] and r.choices[0].finish_reason == "stop"
  # max_tokens cuts a completion of several tokens, with finish_reason "length".
  many = next(
    (name, i)
    for name in PROMPTS
    for i in range(len(TEXTS))
    if s.complete(model=name, prompt=TEXTS[i], temperature=0).json()["usage"]["completion_tokens"]
    > 1
  )
  r = s.client.completions.create(model=many[0], prompt=TEXTS[many[1]], temperature=0, max_tokens=1)
  assert r.usage.completion_tokens == 1 and r.choices[0].finish_reason == "length"
  assert expected[many[0]][many[1]].startswith(r.choices[0].text) and r.choices[0].text


def test_a_seeded_sample_is_the_same_alone_and_in_a_full_batch(served):
  s, _, _ = served
  ask = lambda seed: s.complete(
    model="mid", prompt=TEXTS[4], temperature=1.5, top_p=0.95, seed=seed
  ).json()
  alone = ask(7)["choices"][0]["text"]
  before = _batch_rows(s)
  with concurrent.futures.ThreadPoolExecutor(40) as pool:
    noise = [
      pool.submit(s.complete, model=n, prompt=TEXTS[i % 6], temperature=0.7)
      for i, n in enumerate(list(PROMPTS) * 13)
    ]
    crowded = [pool.submit(ask, 7) for _ in range(3)]
    assert all(f.result().status_code == 200 for f in noise)
    assert [f.result()["choices"][0]["text"] for f in crowded] == [alone] * 3
  (rows, batches), (rows0, batches0) = _batch_rows(s), before
  assert (rows - rows0) / (batches - batches0) > 2, "the crowd was not decoded in shared batches"
  others = {ask(seed)["choices"][0]["text"] for seed in range(8, 14)}
  assert others - {alone}, "six other seeds all sampled the same text: the seed does nothing"


@pytest.mark.parametrize(
  "body, status, param",
  [
    ({"model": "nope", "prompt": "x"}, 404, "model"),
    ({"prompt": "x"}, 400, "model"),
    ({"model": "short"}, 400, "prompt"),
    ({"model": 3, "prompt": "x"}, 400, "model"),
    ({"model": "short", "prompt": {"a": 1}}, 400, "prompt"),
    ({"model": "short", "prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
    ({"model": "short", "prompt": "x", "max_tokens": LENGTHS["targets"] + 1}, 400, "max_tokens"),
    ({"model": "short", "prompt": "x", "max_tokens": "5"}, 400, "max_tokens"),
    ({"model": "short", "prompt": "x", "temperature": -0.5}, 400, "temperature"),
    ({"model": "short", "prompt": "x", "n": 2}, 400, "n"),
    ({"model": "short", "prompt": "x", "echo": True}, 400, "echo"),
    ({"model": "short", "prompt": "x", "best_of": 3}, 400, "best_of"),
    ({"model": "short", "prompt": "x", "suffix": "y"}, 400, "suffix"),
    ({"model": "short", "prompt": "x", "logprobs": 6}, 400, "logprobs"),
    ({"model": "short", "prompt": "x", "frobnicate": 1}, 400, "frobnicate"),
    ({"model": "short", "prompt": "word " * 60}, 400, "prompt"),
    ({"model": "short", "prompt": "x", "max_tokens": True}, 400, "max_tokens"),
    ({"model": "short", "prompt": "x", "max_tokens": 10**400}, 400, "max_tokens"),
    ({"model": "short", "prompt": "x", "temperature": float("nan")}, 400, "temperature"),
    ({"model": "short", "prompt": "x", "n": True}, 400, "n"),
    (
      {"model": "short", "prompt": "x", "stream": True, "stream_options": {"include_usage": "no"}},
      400,
      "stream_options",
    ),
  ],
)
def test_bad_requests_get_openai_shaped_errors_and_change_nothing(served, body, status, param):
  s, expected, _ = served
  content = json.dumps(body).encode()  # NaN and huge integers as a careless client sends them
  r = s.http.post("/v1/completions", content=content, headers={"content-type": "application/json"})
  assert r.status_code == status, r.text
  error = r.json()["error"]
  assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
  assert (
    s.complete(model="short", prompt=TEXTS[0], temperature=0).json()["choices"][0]["text"]
    == expected["short"][0]
  )


def test_bodies_paths_and_keys(served):
  s, expected, _ = served
  for raw in (b"{not json", b"[" * 100_000, b"\xff\xfe", b"1" * 5000):
    not_json = s.http.post(
      "/v1/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json", raw[
      :10
    ]
  # A body over the limit, with its length declared or sent in chunks without one.
  big = b" " * (64 * 2**20 + 1)
  assert s.http.post("/v1/completions", content=big).status_code == 413
  chunks = (big[i : i + 2**20] for i in range(0, len(big), 2**20))
  r = s.http.post("/v1/completions", content=chunks, headers={"content-type": "application/json"})
  assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
  for method, path in [
    ("POST", "/v1/chat/completions"),
    ("GET", "/v2/anything"),
    ("POST", "/v1/embeddings"),
  ]:
    r = s.http.request(method, path, json={})
    assert r.status_code == 404 and "unknown path" in r.json()["error"]["message"]
  assert s.http.get("/v1/completions").status_code == 405
  # Without the key (or with another), every endpoint answers 401.
  for path in ("/health", "/v1/models", "/metrics", "/v1/prompts"):
    assert httpx.get(s.url + path).status_code == 401
  assert httpx.put(s.url + "/v1/prompts/x", json={"vectors": [[0.0] * EMBED]}).status_code == 401
  assert httpx.delete(s.url + "/v1/prompts/short").status_code == 401
  assert "short" in [m.id for m in s.client.models.list().data]
  r = httpx.post(
    s.url + "/v1/completions",
    json={"model": "short", "prompt": "x"},
    headers={"Authorization": "Bearer wrong"},
  )
  assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
  with pytest.raises(openai.AuthenticationError):
    openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
  assert (
    s.client.completions.create(model="short", prompt=TEXTS[0], temperature=0).choices[0].text
    == expected["short"][0]
  )


def test_the_prompt_table_changes_at_run_time_without_compiling(served):
  s, expected, tmp = served
  before = s.http.get("/v1/prompts").json()
  assert {p["id"]: p["length"] for p in before["data"]} == PROMPTS
  # A prompt added by value is served at once, as the same prompt loaded at start is.
  same_as_mid = _prompt(PROMPTS["mid"], 1)
  r = s.http.put("/v1/prompts/mid_copy", json={"vectors": same_as_mid.tolist()})
  assert r.status_code == 201, r.text
  answer = lambda name, i=3: s.complete(model=name, prompt=TEXTS[i], temperature=0).json()[
    "choices"
  ][0]["text"]
  assert answer("mid_copy") == expected["mid"][3]
  # ... as a .npy body, and as a PEFT adapter's files, replacing it.
  buffer = io.BytesIO()
  np.save(buffer, _prompt(PROMPTS["long"], 2))
  r = s.http.put(
    "/v1/prompts/mid_copy",
    content=buffer.getvalue(),
    headers={"content-type": "application/octet-stream"},
  )
  assert r.status_code == 200 and r.json()["replaced"], r.text
  assert answer("mid_copy") == expected["long"][3]
  peft.write_adapter(_prompt(PROMPTS["short"], 0), str(tmp / "adapter"), "t5")
  files = {
    peft.CONFIG_FILE: json.loads((tmp / "adapter" / peft.CONFIG_FILE).read_text()),
    peft.WEIGHTS_FILE: base64.b64encode(
      (tmp / "adapter" / peft.WEIGHTS_FILE).read_bytes()
    ).decode(),
  }
  assert s.http.put("/v1/prompts/from_peft", json={"peft_adapter": files}).status_code == 201
  assert answer("from_peft") == expected["short"][3]
  # A length no prompt had at start (what an eager, shape-dependent update would compile for).
  r = s.http.put("/v1/prompts/eleven", json={"vectors": _prompt(11, 5).tolist()})
  assert r.status_code == 201 and s.complete(model="eleven", prompt="x").status_code == 200
  assert s.http.delete("/v1/prompts/eleven").status_code == 200
  table = s.http.get("/v1/prompts").json()["data"]
  # Malformed uploads are refused, and the table stays as it was.
  bad = [
    {"vectors": np.zeros((3, EMBED + 1)).tolist()},  # another model's width
    {"vectors": [[float("nan")] * EMBED]},  # not finite (sent as NaN)
    {"vectors": np.zeros((101, EMBED)).tolist()},  # longer than --max_prompt_length
    {"vectors": "abc"},
    {"npy": "not base64!"},
    {
      "peft_adapter": {
        peft.CONFIG_FILE: {"peft_type": "LORA"},
        peft.WEIGHTS_FILE: files[peft.WEIGHTS_FILE],
      }
    },
    {"something": 1},
  ]
  for body in bad:
    content = json.dumps(body).encode()  # NaN as JSON's extension, which a careless client sends
    r = s.http.put(
      "/v1/prompts/mid_copy", content=content, headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"], (body, r.text)
  r = s.http.put(
    "/v1/prompts/mid_copy",
    content=b"\x93NUMPY garbage",
    headers={"content-type": "application/octet-stream"},
  )
  assert r.status_code == 400
  assert s.http.get("/v1/prompts").json()["data"] == table
  assert answer("mid_copy") == expected["long"][3]
  # Removed, it is gone from the models and its requests are 404s.
  assert s.http.delete("/v1/prompts/mid_copy").status_code == 200
  assert s.http.delete("/v1/prompts/from_peft").status_code == 200
  assert s.http.delete("/v1/prompts/mid_copy").status_code == 404
  assert "mid_copy" not in [m.id for m in s.client.models.list().data]
  assert s.complete(model="mid_copy", prompt="x").status_code == 404
  # A prompt removed while its rows wait: they fail alone (404), and the rows of other
  # prompts in the same batches are answered.
  assert (
    s.http.put("/v1/prompts/doomed", json={"vectors": _prompt(5, 9).tolist()}).status_code == 201
  )
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    doomed = pool.submit(s.complete, model="doomed", prompt=[TEXTS[0]] * 60, temperature=0)
    others = pool.submit(s.complete, model="short", prompt=TEXTS * 3, temperature=0)
    while _metric(s, "prompt_server_queue_rows") == 0 and not doomed.done():
      pass
    assert s.http.delete("/v1/prompts/doomed").status_code == 200
    r = others.result()
    assert r.status_code == 200, r.text
    assert [c["text"] for c in r.json()["choices"]] == expected["short"] * 3
    assert doomed.result().status_code in (200, 404)
  assert s.compilations_since_ready() == 0


def test_a_burst_over_the_queue_gets_429_with_retry_after_and_the_rest_are_answered(served):
  s, expected, _ = served
  # 16 requests of 20 prompts each, released together: 320 rows against a queue of 80.
  jobs = [
    [(name, (k + i) % len(TEXTS)) for i, name in enumerate(list(PROMPTS) * 7)][:20]
    for k in range(16)
  ]
  start = threading.Barrier(len(jobs))

  def send(job):
    start.wait()
    return s.complete(model=job[0][0], prompt=[TEXTS[i] for _, i in job], temperature=0)

  with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
    responses = list(pool.map(send, jobs))
  refused = [r for r in responses if r.status_code != 200]
  assert refused, "320 rows at once never filled a queue of 80"
  assert len(refused) < len(jobs), "nothing was accepted"
  for r in refused:
    assert r.status_code in (429, 503) and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "queue_full"
  for job, r in zip(jobs, responses):
    if r.status_code == 200:
      name = job[0][0]
      assert [c["text"] for c in r.json()["choices"]] == [expected[name][i] for _, i in job]
  # A request that could never fit is a 400, not a 429 to retry forever.
  r = s.complete(model="short", prompt=["x"] * 81, temperature=0)
  assert r.status_code == 400 and "--max_queue" in r.json()["error"]["message"]


def test_sigterm_finishes_what_is_in_flight_and_exits(served):
  s, expected, _ = served  # the last test of the module: it stops the server
  # One request of 80 prompts (three batches): SIGTERM arrives once its rows are queued,
  # so it is in flight for certain, and must still be answered whole.
  texts = [TEXTS[i % len(TEXTS)] for i in range(80)]
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    future = pool.submit(s.complete, model="long", prompt=texts, temperature=0)
    deadline = time.time() + 60
    while _metric(s, "prompt_server_queue_rows") == 0:
      assert not future.done() and time.time() < deadline, "the request was never queued"
    s.process.send_signal(signal.SIGTERM)
    stopped = time.time()
    r = future.result()
  assert r.status_code == 200, r.text
  assert [c["text"] for c in r.json()["choices"]] == [
    expected["long"][i % len(TEXTS)] for i in range(80)
  ]
  # uvicorn ends the process by the signal it stopped for, once the request is done.
  assert s.process.wait(timeout=20) in (0, -signal.SIGTERM), _tail(s.log)
  assert time.time() - stopped < 20


def test_a_missing_prompt_file_stops_the_command_with_one_line(tmp_path):
  result = _serve_fails(
    f"--gin.PROMPT_FILES={{'a': '{tmp_path / 'missing.npy'}'}}", f"--port={_free_port()}"
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[-1] == f"error: prompt file {tmp_path / 'missing.npy'} does not exist", result.stderr
  assert "Traceback" not in result.stderr


def test_the_documented_commands_serve_and_answer(request, tmp_path):
  start, curl, client, table = doc_blocks.run_by(request, "docs/serving.md")
  # The prompt `make demo` trains, as a run's MODEL_DIR (its numpy checkpoint).
  model_dir = tmp_path / "demo_prompt"
  step = model_dir / "numpy_checkpoints" / "checkpoint_1500"
  step.mkdir(parents=True)
  np.save(step / "encoder.prompt.prompt.npy", _prompt(20, 3))
  port = str(_free_port())
  moved = {"build/demo/prompt": str(model_dir), "8000": port}
  script = start
  for old, new in moved.items():
    script = script.replace(old, new)
  log = open(tmp_path / "server.log", "w+")
  env = dict(ENV, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
  server = subprocess.Popen(
    ["sh", "-e", "-c", script],
    cwd=conftest.REPO_ROOT,
    env=env,
    stdout=log,
    stderr=subprocess.STDOUT,
    start_new_session=True,
  )
  try:
    deadline = time.time() + 180
    while True:
      assert server.poll() is None, _tail(log)
      try:
        if httpx.get(f"http://localhost:{port}/health", timeout=5).status_code == 200:
          break
      except httpx.TransportError:
        pass
      assert time.time() < deadline, _tail(log)
      time.sleep(0.1)
    out = doc_blocks.run_shell(curl, tmp_path, moved).stdout
    models, completion = _json_values(out)
    assert [m["id"] for m in models["data"]] == ["supersense"]
    assert completion["choices"][0]["finish_reason"] in ("stop", "length")
    printed = doc_blocks.run_python(client.replace("8000", port), tmp_path).stdout
    assert "['supersense']" in printed and "prompt_tokens" in printed
    out = doc_blocks.run_shell(table, tmp_path, moved).stdout
    put, listed, deleted = _json_values(out)
    assert put == {"id": "supersense_copy", "length": 20, "replaced": False}
    assert [p["id"] for p in listed["data"]] == ["supersense", "supersense_copy"]
    assert deleted == {"id": "supersense_copy", "deleted": True}
  finally:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    log.close()


def test_a_port_in_use_stops_the_command_with_one_line():
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    result = _serve_fails("--gin.PROMPT_FILES={}", f"--port={port}")
  assert result.returncode == 1, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: cannot listen on 127.0.0.1:{port} (") and "--port" in last
  assert "Traceback" not in result.stderr and "Fatal" not in result.stderr
