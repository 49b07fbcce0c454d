r"""The load test's peer: transformers' T5 with PEFT prompt-tuning adapters, `generate` per request.

What serving prompts looks like without this project: one PEFT adapter per
prompt on one transformers model, the request's adapter selected with
`set_adapter`, then `generate` for that request alone (PEFT does not mix
prompt-tuning adapters in one batch, peft#759). It answers the subset of
OpenAI's completions that the load test sends (`model`, `prompt` as one
string, `max_tokens`, greedy), one request at a time.

    python scripts/hf_peft_server.py --hf_dir=DIR --adapters_dir=DIR --port=8001

`--hf_dir` is a transformers T5 directory (scripts/convert_checkpoint.py
--to=huggingface writes one); `--adapters_dir` holds one PEFT adapter
directory per prompt, named as the prompt.
"""

import argparse
import os
import threading

import fastapi
import sentencepiece
import torch
import uvicorn

EOS_ID = 1


def build_app(hf_dir: str, adapters_dir: str, spm_model: str, max_tokens: int) -> fastapi.FastAPI:
  import peft  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  base = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir).eval()
  names = sorted(os.listdir(adapters_dir))
  model = peft.PeftModel.from_pretrained(
    base, os.path.join(adapters_dir, names[0]), adapter_name=names[0]
  )
  for name in names[1:]:
    model.load_adapter(os.path.join(adapters_dir, name), adapter_name=name)
  model.eval()
  tokenizer = sentencepiece.SentencePieceProcessor(model_file=spm_model)
  lock = threading.Lock()  # one model, one adapter selected at a time
  app = fastapi.FastAPI()

  @app.get("/health")
  def health():
    return {"status": "ok", "prompts": len(names)}

  @app.post("/v1/completions")
  def completions(body: dict):
    name, text = body["model"], body["prompt"]
    if name not in names:
      raise fastapi.HTTPException(404, f"no adapter {name!r}")
    ids = tokenizer.encode(text) + [EOS_ID]
    with lock, torch.no_grad():
      model.set_adapter(name)
      out = model.generate(
        input_ids=torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=int(body.get("max_tokens") or max_tokens),
        do_sample=False,
        num_beams=1,
        decoder_start_token_id=0,
        eos_token_id=EOS_ID,
        pad_token_id=0,
      )[0, 1:].tolist()
    out = out[: out.index(EOS_ID)] if EOS_ID in out else out
    return {
      "object": "text_completion",
      "model": name,
      "choices": [{"text": tokenizer.decode(out), "index": 0, "finish_reason": "stop"}],
    }

  return app


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--hf_dir", required=True)
  parser.add_argument("--adapters_dir", required=True)
  parser.add_argument("--spm_model", default="prompt_tuning/data/wordnet/spm.model")
  parser.add_argument("--max_tokens", type=int, default=4)
  parser.add_argument("--port", type=int, default=8001)
  parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
  args = parser.parse_args(argv)
  torch.set_num_threads(args.threads)
  app = build_app(args.hf_dir, args.adapters_dir, args.spm_model, args.max_tokens)
  uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
  main()
