"""The request-level backend (``simulator: request``): every request and every instance event at its exact time.

One compiled event loop per cluster and step (``loop.step_cluster``) over the same parameter, state and output
tables as the fast model, plus the tables of ``layout`` (per-slot request bookkeeping, FIFO rings, the heap of
requests in service). It reuses the fast kernel's action, observation, reward and info phases, so both backends
fill the same metrics row the same way from what they simulated. Modules, one responsibility each:

- ``layout``: the column tables and the records the loop takes;
- ``heap``: the binary heap of completions and the per-instance FIFO rings;
- ``draws``: service times and the arrival stream of a step;
- ``lifecycle``: instance events at their exact times (cold start end, crash, detection, replacement, drain,
  termination, outages);
- ``loop``: the event loop of a step and the compiled batch entry points;
- ``backend``: the Python side: allocation, reset, step, the latency-by-arrival side channel.
"""
