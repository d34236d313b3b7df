"""Fine-tuning speed of a ranker on CPU: random batches vs length-bucketed batches, and the frozen-encoder probe.

    .venv/bin/python artifact/benchmarks/ranker_training.py                     # MiniLM, 128 tokens, 3 rounds
    .venv/bin/python artifact/benchmarks/ranker_training.py --max-tokens 512 --rounds 2 --steps 6

Real ShareGPT first turns (seeded draw), the MiniLM encoder + PARS's head, in-batch pairs of `--batch` prompts
per step (the CPU profiles' setting), AdamW. For each round, in turn (A B A B ..., since this machine's speed
drifts between runs):
  random    batches of shuffled prompts, each padded to its longest prompt (dynamic padding)
  bucketed  the same prompts regrouped by `length_bucketing=True` (llmsched.predictors.train.bucket_by_length)
Both time `--steps` optimizer steps (forward, backward, step) after one warm-up step; printed per round: steps/s,
prompts/s and the mean padded width (tokens per prompt the encoder computed). Then the frozen-encoder path: the
seconds to encode all `--probe-prompts` prompts once (llmsched.predictors.embeddings.frozen_vectors) and to train
a two-layer probe head on them for 30 epochs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--probe-prompts", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from llmsched.models import load_model_tokenizer
    from llmsched.predictors.embeddings import frozen_vectors, pad_batch, token_ids
    from llmsched.predictors.losses import margin_ranking
    from llmsched.predictors.model import EncoderRanker, load_encoder
    from llmsched.predictors.pairs import filter_pairs
    from llmsched.predictors.train import bucket_by_length
    from llmsched.workload import load_sharegpt, to_requests

    records, _ = load_sharegpt()
    n_prompts = max(args.batch * args.steps * 2 * 50, args.probe_prompts)
    reqs, _ = to_requests(records, load_model_tokenizer("tiny"), limit=n_prompts, seed=args.seed,
                          max_prompt_tokens=None)
    prompts = [r.prompt for r in reqs]
    lengths = np.array([r.output_tokens for r in reqs], dtype=float)
    encoder, tokenizer = load_encoder(args.backbone)
    ids = token_ids(tokenizer, prompts, args.max_tokens)
    sizes = np.array([len(r) for r in ids])
    pad = tokenizer.pad_token_id or 0
    print(f"{len(prompts)} ShareGPT prompts, {args.backbone} at <= {args.max_tokens} tokens: mean {sizes.mean():.1f} "
          f"tokens, {100 * (sizes >= args.max_tokens).mean():.0f} % at the limit; torch threads "
          f"{torch.get_num_threads()}")

    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(prompts))
    batches = [perm[s:s + args.batch] for s in range(0, len(perm) - args.batch + 1, args.batch)]
    plans = {"random": batches, "bucketed": bucket_by_length(batches, sizes, np.random.default_rng(args.seed + 1))}
    model = EncoderRanker(encoder, pooling="mean")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)

    def step(batch: np.ndarray) -> None:
        i, j = np.triu_indices(len(batch), k=1)
        a, b, y = filter_pairs(batch[i], batch[j], lengths, 0.2)
        uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        s = model(*pad_batch([ids[k] for k in uniq], pad))
        loss = margin_ranking(s[inv[: len(a)]], s[inv[len(a):]], torch.tensor(y, dtype=s.dtype), 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rates: dict[str, list[float]] = {name: [] for name in plans}
    for rnd in range(args.rounds):
        for name, plan in plans.items():
            chosen = plan[rnd * (args.steps + 1):(rnd + 1) * (args.steps + 1)]
            step(chosen[0])  # warm-up
            t0 = time.perf_counter()
            for b in chosen[1:]:
                step(b)
            dt = time.perf_counter() - t0
            width = float(np.mean([sizes[b].max() for b in chosen[1:]]))
            rates[name].append(args.steps / dt)
            print(f"round {rnd + 1} {name:<9} {args.steps / dt:6.3f} steps/s  {args.steps * args.batch / dt:6.1f} "
                  f"prompts/s  mean padded width {width:5.1f} tokens", flush=True)
    for name, r in rates.items():
        print(f"{name:<9} mean {statistics.mean(r):.3f} steps/s over {len(r)} rounds (min {min(r):.3f}, max "
              f"{max(r):.3f})")
    if rates["random"]:
        print(f"speed-up of bucketing: {statistics.mean(rates['bucketed']) / statistics.mean(rates['random']):.2f}x")

    sub = list(range(args.probe_prompts))
    t0 = time.perf_counter()
    vecs = frozen_vectors(model, [ids[k] for k in sub], pad, key=None, progress=False)
    enc_s = time.perf_counter() - t0
    head = torch.nn.Sequential(torch.nn.Linear(vecs.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 1))
    hopt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    y = torch.tensor((np.log1p(lengths[sub]) - np.log1p(lengths[sub]).mean()) / np.log1p(lengths[sub]).std(),
                     dtype=torch.float32)
    t0 = time.perf_counter()
    for _ in range(30):
        order = torch.randperm(len(sub))
        for s in range(0, len(sub), 128):
            b = order[s:s + 128]
            loss = ((head(vecs[b]).squeeze(-1) - y[b]) ** 2).mean()
            hopt.zero_grad()
            loss.backward()
            hopt.step()
    print(f"frozen encoder: {len(sub)} prompts encoded once in {enc_s:.1f} s ({1000 * enc_s / len(sub):.1f} "
          f"ms/prompt); probe head, 30 epochs: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
