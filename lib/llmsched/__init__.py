"""llmsched: LLM request scheduling (PARS, EWSJF) on vLLM and a calibrated simulator.

Subpackages, by concern:
    workload      Request record, dataset loaders, length measurement, arrival processes
    predictors    response-length rankers
    policies      waiting-queue policies shared by the vLLM plug-in and the simulator
    sim           discrete-event simulator of vLLM's scheduling loop
    vllm_plugin   the vLLM scheduler class that installs a policy queue
    serving       drives a real vLLM engine with a workload, records per-request timings
    analysis      latency / throughput metrics, figures, tables
"""

__version__ = "0.1.0"
