"""Which offline model to serve on CPU: output speed and natural answer lengths of the prepared serving models.

    .venv/bin/python artifact/benchmarks/serving_models.py                       # smollm2 vs gemma, 2 rounds
    .venv/bin/python artifact/benchmarks/serving_models.py --models smollm2 --n 16 --rounds 1

For each model, each round (models interleaved: A B A B, since this machine's speed drifts between runs):
  speed    the same N ShareGPT first turns, greedy, `ignore_eos`, exactly --fixed-tokens output tokens each, all
           submitted at once to an engine with max_num_seqs 16: output tokens per second of generate()
  natural  the same prompts sampled at temperature 0.7, top-p 0.95, up to --max-tokens: share of answers that
           end at EOS, mean and median length (the response lengths a length predictor would learn)
Chat models get their chat template (one user turn); a model without one gets "Question: ...\\nAnswer:" and stops at
a blank line, as the length collection does for a base model. Prints one row per model and round, the mean speed
per model, and one sample answer each. Prepare the models first (python -m llmsched.models prepare smollm2 gemma).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prompts_for(model: str, n: int, seed: int, max_prompt_tokens: int) -> tuple[list[str], bool]:
    from llmsched.models import load_model_tokenizer
    from llmsched.workload import load_sharegpt, to_requests

    tok = load_model_tokenizer(model)
    records, _ = load_sharegpt()
    reqs, _ = to_requests(records, tok, limit=n, seed=seed, max_prompt_tokens=max_prompt_tokens)
    chat = bool(getattr(tok, "chat_template", None))
    if chat:
        return [tok.apply_chat_template([{"role": "user", "content": r.prompt}], tokenize=False,
                                        add_generation_prompt=True) for r in reqs], True
    return [f"Question: {r.prompt}\nAnswer:" for r in reqs], False


def one_round(model: str, args: argparse.Namespace) -> dict:
    from vllm import SamplingParams

    from llmsched.serving.engine import EngineConfig, build_llm

    prompts, chat = prompts_for(model, args.n, args.seed, args.max_prompt_tokens)
    t0 = time.perf_counter()
    llm = build_llm(EngineConfig(model=model, max_num_seqs=16, max_model_len=2048, kv_cache_gib=2, seed=args.seed))
    startup = time.perf_counter() - t0
    fixed = SamplingParams(temperature=0.0, max_tokens=args.fixed_tokens, ignore_eos=True)
    t0 = time.perf_counter()
    outs = llm.generate(prompts, fixed, use_tqdm=False)
    speed_s = time.perf_counter() - t0
    n_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    natural = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=args.max_tokens,
                             stop=[] if chat else ["\n\n", "\nQuestion:"])
    outs = llm.generate(prompts, natural, use_tqdm=False)
    lengths = [len(o.outputs[0].token_ids) for o in outs]
    stopped = [o.outputs[0].finish_reason == "stop" for o in outs]
    del llm
    return {"model": model, "chat": chat, "startup_s": round(startup, 1), "out_tok_s": round(n_tokens / speed_s, 1),
            "eos_share": round(sum(stopped) / len(stopped), 2), "len_mean": round(statistics.mean(lengths), 1),
            "len_median": statistics.median(lengths), "sample": outs[0].outputs[0].text.strip()[:200]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2", "gemma"])
    ap.add_argument("--n", type=int, default=32, help="ShareGPT prompts")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fixed-tokens", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for r in range(args.rounds):
        for model in args.models:
            row = {"round": r, **one_round(model, args)}
            rows.append(row)
            print({k: v for k, v in row.items() if k != "sample"}, flush=True)
    for model in args.models:
        speeds = [row["out_tok_s"] for row in rows if row["model"] == model]
        print(f"{model}: output tok/s {statistics.mean(speeds):.1f} (runs {speeds}); sample answer: "
              f"{next(row['sample'] for row in rows if row['model'] == model)!r}")


if __name__ == "__main__":
    main()
