r"""Load test of `python -m prompt_tuning.serve` with locust, against two peers, in one run.

Three systems answer the same OpenAI completions traffic (greedy, max_tokens 4,
inputs drawn from 8 texts) on the bundled tiny model with up to 512 prompts of
4 to 20 vectors:

* `batched`: the server as shipped (batch sizes 1, 8, 32, 64): requests that
  arrive together are decoded together, whatever their prompts;
* `one_at_a_time`: the same server with `--batch_sizes=1`: every request
  decoded alone, in arrival order;
* `hf_peft`: transformers' T5 with one PEFT prompt-tuning adapter per prompt,
  `set_adapter` then `generate` per request (scripts/hf_peft_server.py).

For each, locust (headless, closed loop: every user sends its next request when
the last is answered) runs at 1 to 128 concurrent users with 8 distinct prompts,
then at 32 users with 1 to 512 distinct prompts. The server runs on
`--server_cpus`, locust on `--client_cpus`; the load average is recorded before
every measurement. Results: `--out_dir`/results.json, a markdown table on
stdout, and the plot `--out_dir`/load_test.png.

    pip install -e '.[load]'   # locust
    python scripts/load_test.py --out_dir=build/load_test
    python scripts/load_test.py --systems=batched --concurrency=1,32 --prompts=8 --seconds=5

Every answer is checked (a non-200 counts as a failure; the table shows failures).
"""

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = "prompt_tuning/data/wordnet_tiny"
LENGTHS = {"inputs": 48, "targets": 4}
EMBED = 128
SYSTEMS = ("batched", "one_at_a_time", "hf_peft")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _on_cpus(cpus):
  return lambda: os.sched_setaffinity(0, cpus) if cpus else None


def _wait(url: str, process: subprocess.Popen, seconds: float = 600) -> None:
  import urllib.request  # pylint: disable=g-import-not-at-top

  deadline = time.time() + seconds
  while time.time() < deadline:
    if process.poll() is not None:
      raise SystemExit(f"the server at {url} exited ({process.returncode})")
    try:
      with urllib.request.urlopen(url + "/health", timeout=5) as r:
        if r.status == 200:
          return
    except OSError:
      pass
    time.sleep(0.5)
  raise SystemExit(f"the server at {url} never became ready")


def _prompts(n: int, directory: str) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  prompts = {}
  for i in range(n):
    length = int(rng.integers(4, 21))
    prompts[f"p{i}"] = (rng.normal(size=(length, EMBED)) * 0.5).astype(np.float32)
  os.makedirs(directory, exist_ok=True)
  return prompts


def _start_ours(batch_sizes: str, prompts, cpus, tmp: str):
  import urllib.request  # pylint: disable=g-import-not-at-top

  first = os.path.join(tmp, "p0.npy")
  np.save(first, prompts["p0"])
  port = _free_port()
  process = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "prompt_tuning.serve",
      "--gin_file=configs/models/wordnet_tiny_prompt.gin",
      "--gin_file=configs/runs/prompt_serve.gin",
      f"--gin.INITIAL_CHECKPOINT_PATH='{CHECKPOINT}'",
      f"--gin.PROMPT_FILES={{'p0': '{first}'}}",
      f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
      f"--port={port}",
      f"--batch_sizes={batch_sizes}",
      f"--max_prompts={len(prompts)}",
      "--max_prompt_length=20",
      "--max_queue=1024",
    ],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.STDOUT,
    preexec_fn=_on_cpus(cpus),
  )
  url = f"http://127.0.0.1:{port}"
  _wait(url, process)
  for name, prompt in prompts.items():  # the rest through the API, as a user adds them
    request = urllib.request.Request(
      f"{url}/v1/prompts/{name}",
      data=json.dumps({"vectors": prompt.tolist()}).encode(),
      headers={"Content-Type": "application/json"},
      method="PUT",
    )
    urllib.request.urlopen(request, timeout=60).close()
  return process, url


def _start_hf_peft(prompts, cpus, tmp: str):
  from prompt_tuning.checkpoints import peft  # pylint: disable=g-import-not-at-top

  hf_dir = os.path.join(tmp, "hf")
  if not os.path.isdir(hf_dir):
    subprocess.run(
      [
        sys.executable,
        "scripts/convert_checkpoint.py",
        f"--input={CHECKPOINT}",
        f"--output={hf_dir}",
        "--to=huggingface",
      ],
      cwd=REPO,
      check=True,
      capture_output=True,
    )
  adapters = os.path.join(tmp, "adapters")
  shutil.rmtree(adapters, ignore_errors=True)
  for name, prompt in prompts.items():
    peft.write_adapter(prompt, os.path.join(adapters, name), hf_dir)
  port = _free_port()
  process = subprocess.Popen(
    [
      sys.executable,
      "scripts/hf_peft_server.py",
      f"--hf_dir={hf_dir}",
      f"--adapters_dir={adapters}",
      f"--port={port}",
      f"--threads={max(1, len(cpus or [0]))}",
    ],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.STDOUT,
    preexec_fn=_on_cpus(cpus),
  )
  url = f"http://127.0.0.1:{port}"
  _wait(url, process)
  return process, url


def _locust(url: str, users: int, names, seconds: int, cpus, prefix: str) -> dict:
  env = dict(os.environ, LOAD_PROMPTS=",".join(names), LOAD_MAX_TOKENS=str(LENGTHS["targets"]))
  load = os.getloadavg()[0]
  subprocess.run(
    [
      os.path.join(os.path.dirname(sys.executable), "locust"),
      "-f",
      "scripts/locustfile.py",
      "--headless",
      "-u",
      str(users),
      "-r",
      str(users),
      "-t",
      f"{seconds}s",
      "--reset-stats",
      "--only-summary",
      "--host",
      url,
      "--csv",
      prefix,
    ],
    cwd=REPO,
    env=env,
    check=False,
    capture_output=True,
    preexec_fn=_on_cpus(cpus),
  )
  with open(prefix + "_stats.csv") as f:
    row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
  return {
    "requests": int(row["Request Count"]),
    "failures": int(row["Failure Count"]),
    "rps": float(row["Requests/s"]),
    "p50_ms": float(row["50%"]),
    "p99_ms": float(row["99%"]),
    "load_average_before": load,
  }


def _ints(text: str) -> list[int]:
  return [int(x) for x in text.split(",") if x]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out_dir", default="build/load_test")
  parser.add_argument("--systems", default=",".join(SYSTEMS))
  parser.add_argument("--concurrency", default="1,2,4,8,16,32,64,128")
  parser.add_argument("--prompts", default="1,8,64,512", help="distinct prompts in the traffic")
  parser.add_argument("--prompts_users", type=int, default=32, help="users for the prompts axis")
  parser.add_argument("--concurrency_prompts", type=int, default=8)
  parser.add_argument("--seconds", type=int, default=15)
  parser.add_argument("--server_cpus", default="0")
  parser.add_argument("--client_cpus", default="1")
  args = parser.parse_args(argv)
  os.chdir(REPO)
  out = os.path.abspath(args.out_dir)
  os.makedirs(out, exist_ok=True)
  server_cpus, client_cpus = set(_ints(args.server_cpus)), set(_ints(args.client_cpus))
  concurrency, distinct = _ints(args.concurrency), _ints(args.prompts)
  prompts = _prompts(max(distinct + [args.concurrency_prompts]), os.path.join(out, "prompts"))
  names = list(prompts)
  results = {
    "setup": {
      "model": "the bundled tiny model (2.85M parameters)",
      "task_feature_lengths": LENGTHS,
      "seconds_per_point": args.seconds,
      "server_cpus": sorted(server_cpus),
      "client_cpus": sorted(client_cpus),
      "cpu_count": os.cpu_count(),
    },
    "runs": [],
  }
  for system in args.systems.split(","):
    if system == "hf_peft":
      process, url = _start_hf_peft(prompts, server_cpus, out)
    else:
      sizes = "1,8,32,64" if system == "batched" else "1"
      process, url = _start_ours(sizes, prompts, server_cpus, out)
    try:
      points = [("concurrency", c, c, args.concurrency_prompts) for c in concurrency]
      points += [("prompts", p, args.prompts_users, p) for p in distinct]
      for axis, value, users, n in points:
        prefix = os.path.join(out, f"{system}_{axis}_{value}")
        stats = _locust(url, users, names[:n], args.seconds, client_cpus, prefix)
        row = {"system": system, "axis": axis, "users": users, "prompts": n, **stats}
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
    finally:
      process.terminate()
      process.wait(timeout=60)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  print(table(results["runs"]))
  print(f"load_test: results={out}/results.json plot={plot(results['runs'], out)}")
  return 0


def table(runs) -> str:
  lines = [
    "| axis | users | prompts | system | req/s | p50 ms | p99 ms | failures | load avg |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in runs:
    lines.append(
      f"| {r['axis']} | {r['users']} | {r['prompts']} | {r['system']} | {r['rps']:.1f} | "
      f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['failures']} | {r['load_average_before']:.2f} |"
    )
  return "\n".join(lines)


def plot(runs, out: str) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for system in sorted({r["system"] for r in runs}):
    mine = [r for r in runs if r["system"] == system]
    by_users = [r for r in mine if r["axis"] == "concurrency"]
    by_prompts = [r for r in mine if r["axis"] == "prompts"]
    (line,) = axes[0].plot(
      [r["users"] for r in by_users], [r["rps"] for r in by_users], "o-", label=system
    )
    axes[1].plot(
      [r["users"] for r in by_users],
      [r["p50_ms"] for r in by_users],
      "o-",
      color=line.get_color(),
      label=f"{system} p50",
    )
    axes[1].plot(
      [r["users"] for r in by_users],
      [r["p99_ms"] for r in by_users],
      "o--",
      color=line.get_color(),
      label=f"{system} p99",
    )
    axes[2].plot(
      [r["prompts"] for r in by_prompts],
      [r["rps"] for r in by_prompts],
      "o-",
      color=line.get_color(),
      label=system,
    )
  for ax, (x, y) in zip(
    axes,
    [
      ("concurrent users", "requests / s"),
      ("concurrent users", "latency (ms)"),
      ("distinct prompts in the traffic", "requests / s"),
    ],
  ):
    ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  axes[1].set_yscale("log")
  fig.tight_layout()
  path = os.path.join(out, "load_test.png")
  fig.savefig(path, dpi=110)
  return path


if __name__ == "__main__":
  sys.exit(main())
