"""Column tables of the request-level backend (built like ``sim.state``: a tuple of names, checked constants).

Per cluster ``b`` and slot ``i``:

- ``slot_f[b, i, :]`` (float64), ``slot_i[b, i, :]`` (int64): the columns below;
- ``ring[b, i, :]``: the arrival times of the requests waiting on slot i, a FIFO ring of ``max(max_queue, 1)``;
- ``heap_t/heap_a/heap_s[b, :]``: the requests in service as a binary min-heap on completion time (with
  their arrival time and slot); at most ``slots * concurrency`` entries;
- ``gen[b, :]``: the arrival stream of the current step (columns ``G_*``);
- ``hist[b, :]``: the step's histogram of response times by completion (log bins, ``HIST_*``);
- ``by_arrival[b, k, :]``: completed requests that arrived in step k (count, response-time sum), the
  latency-by-arrival side channel;
- ``outage_done[b, o]``: 1 once outage o has struck in this episode;
- ``fine[row, j]``: expected arrivals in sub-interval j of the episode (``sub`` sub-intervals per step);
- ``act_ring[b, :]``: platform mode with the activator: the arrival times of the buffered requests, a FIFO ring
  of ``max(platform.activator_capacity, 1)`` (one entry without the activator).
"""

from __future__ import annotations

import math
from collections import namedtuple

from ..state import check_columns

SLOT_F_FIELDS: tuple[tuple[str, str], ...] = (
    ("ready", "booting: time its cold start ends, s"),
    ("crash_at", "warm: time of a spontaneous crash drawn for this step (inf: none)"),
    ("detect_at", "failed: time of the health check that takes it out, s"),
    ("end_at", "draining: deregistration deadline; unhealthy being replaced: end of its termination, s"),
    ("bill_from", "start of the part of the step billed so far, s"),
    ("billed", "billed seconds in this step"),
    ("serve_from", "start of its serving in this step (warm or draining), s; -1 if not serving"),
    ("serve_time", "seconds served (warm or draining) in this step"),
    ("busy_area", "integral of busy servers over the step, server-seconds"),
    ("last_t", "time of its last change of busy servers, s"),
    ("peak", "most requests in service or queued on it in this step"),
    ("idle_at", "platform mode: time it last became idle (no request in service or waiting), s"),
)
(
    S_READY,
    S_CRASH_AT,
    S_DETECT_AT,
    S_END_AT,
    S_BILL_FROM,
    S_BILLED,
    S_SERVE_FROM,
    S_SERVE_TIME,
    S_BUSY_AREA,
    S_LAST_T,
    S_PEAK,
    S_IDLE_AT,
) = range(len(SLOT_F_FIELDS))
N_SLOT_F = check_columns("S_", tuple(f[0] for f in SLOT_F_FIELDS), globals())

SLOT_I_FIELDS: tuple[tuple[str, str], ...] = (
    ("busy", "requests in service"),
    ("qhead", "index of the oldest waiting request in its ring"),
    ("qlen", "requests waiting"),
)
Q_BUSY, Q_QHEAD, Q_QLEN = range(len(SLOT_I_FIELDS))
N_SLOT_I = check_columns("Q_", tuple(f[0] for f in SLOT_I_FIELDS), globals())

GEN_FIELDS: tuple[tuple[str, str], ...] = (
    ("next", "time of the next arrival of the step, s (inf: none left)"),
    ("sub", "sub-interval of the step the stream is in"),
    ("left", "deterministic arrivals: requests of the sub-interval not yet emitted"),
    ("count", "deterministic arrivals: requests of the sub-interval"),
    ("heap_n", "requests in service (entries of the heap)"),
    ("boot_rr", "rotating pointer over booting instances for cold-start waits"),
    ("next_event", "time of the next instance event (inf: none in the step)"),
    ("resp_sum", "summed response time of the requests completed in the step, s"),
    ("pf_t", "platform mode: time the scaling tokens were last refilled to, s"),
    ("act_head", "platform mode: index of the oldest request in the activator's buffer"),
    ("act_len", "platform mode: requests in the activator's buffer"),
)
(
    G_NEXT,
    G_SUB,
    G_LEFT,
    G_COUNT,
    G_HEAP_N,
    G_BOOT_RR,
    G_NEXT_EVENT,
    G_RESP_SUM,
    G_PF_T,
    G_ACT_HEAD,
    G_ACT_LEN,
) = range(len(GEN_FIELDS))
N_GEN = check_columns("G_", tuple(f[0] for f in GEN_FIELDS), globals())

# response-time histogram: log bins of ratio HIST_RATIO from HIST_MIN s (~0.5 % resolution of a quantile)
HIST_MIN = 1e-4
HIST_MAX = 1e5
HIST_RATIO = 1.01
HIST_LOG_RATIO = math.log(HIST_RATIO)
HIST_BINS = int(math.ceil(math.log(HIST_MAX / HIST_MIN) / HIST_LOG_RATIO)) + 1
SUB_SECONDS = 1.0  # the arrival rate is integrated exactly over sub-intervals of at most this length
MAX_SUB = 600  # sub-intervals per step at most

ReqState = namedtuple(
    "ReqState", "slot_f slot_i ring heap_t heap_a heap_s gen hist by_arrival outage_done fine sub act_ring"
)
