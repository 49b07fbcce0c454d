"""The load test's users (locust): each sends greedy completions back to back, for a prompt
drawn at random from $LOAD_PROMPTS (comma-separated names) and an input drawn from TEXTS.

scripts/load_test.py runs it headless; by hand:

    LOAD_PROMPTS=p0,p1 locust -f scripts/locustfile.py --headless -u 32 -r 32 -t 20s \
      --host http://127.0.0.1:8000
"""

import os
import random

from locust import FastHttpUser, constant, task

TEXTS = (
  "sparrow: a small brown bird that nests near houses",
  "oak: a tree that bears acorns",
  "run: move fast on foot",
  "happy: feeling or showing pleasure",
  "table: a piece of furniture with a flat top",
  "river: a large natural stream of water",
  "violin: a bowed instrument with four strings",
  "granite: a hard igneous rock",
)
PROMPTS = [p for p in os.environ.get("LOAD_PROMPTS", "default").split(",") if p]
MAX_TOKENS = int(os.environ.get("LOAD_MAX_TOKENS", "4"))


class CompletionUser(FastHttpUser):
  wait_time = constant(0)  # closed loop: a user's next request follows its last answer

  @task
  def complete(self):
    body = {
      "model": random.choice(PROMPTS),
      "prompt": random.choice(TEXTS),
      "max_tokens": MAX_TOKENS,
      "temperature": 0,
    }
    with self.client.post(
      "/v1/completions", json=body, name="completions", catch_response=True
    ) as response:
      if response.status_code != 200:
        response.failure(f"{response.status_code}: {response.text[:200]}")
      elif not response.json()["choices"]:
        response.failure("no choices")
