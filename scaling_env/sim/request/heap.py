"""The requests in service (a binary min-heap on completion time) and the requests waiting (a FIFO ring per slot).

The heap holds every request in service in the cluster: (completion time, arrival time, slot). Its capacity
``slots * concurrency`` is the most that can be in service at once, so it never overflows. A crashed or
deregistered instance's entries are removed at once (``remove_slot``), so no stale entry is ever popped.
"""

from __future__ import annotations

from numba import njit

from .layout import G_ACT_HEAD, G_ACT_LEN, G_HEAP_N, Q_QHEAD, Q_QLEN

_OPTS = {"cache": True, "_nrt": False}  # no allocation here: no reference counting (see kernel._KERNEL)


@njit(inline="always", **_OPTS)
def _sift_up(ht, ha, hs, b, j):
    t, a, s = ht[b, j], ha[b, j], hs[b, j]
    while j > 0:
        parent = (j - 1) >> 1
        if ht[b, parent] <= t:
            break
        ht[b, j], ha[b, j], hs[b, j] = ht[b, parent], ha[b, parent], hs[b, parent]
        j = parent
    ht[b, j], ha[b, j], hs[b, j] = t, a, s


@njit(inline="always", **_OPTS)
def _sift_down(ht, ha, hs, b, j, n):
    t, a, s = ht[b, j], ha[b, j], hs[b, j]
    while True:
        child = 2 * j + 1
        if child >= n:
            break
        if child + 1 < n and ht[b, child + 1] < ht[b, child]:
            child += 1
        if ht[b, child] >= t:
            break
        ht[b, j], ha[b, j], hs[b, j] = ht[b, child], ha[b, child], hs[b, child]
        j = child
    ht[b, j], ha[b, j], hs[b, j] = t, a, s


@njit(**_OPTS)
def heap_push(r, b, t_done, t_arrival, slot):
    """A request starts: it completes at ``t_done``."""
    n = int(r.gen[b, G_HEAP_N])
    r.heap_t[b, n] = t_done
    r.heap_a[b, n] = t_arrival
    r.heap_s[b, n] = slot
    _sift_up(r.heap_t, r.heap_a, r.heap_s, b, n)
    r.gen[b, G_HEAP_N] = n + 1


@njit(**_OPTS)
def heap_pop(r, b):
    """Remove the earliest completion; returns (completion time, arrival time, slot)."""
    n = int(r.gen[b, G_HEAP_N]) - 1
    t, a, s = r.heap_t[b, 0], r.heap_a[b, 0], r.heap_s[b, 0]
    r.heap_t[b, 0], r.heap_a[b, 0], r.heap_s[b, 0] = r.heap_t[b, n], r.heap_a[b, n], r.heap_s[b, n]
    r.gen[b, G_HEAP_N] = n
    if n > 0:
        _sift_down(r.heap_t, r.heap_a, r.heap_s, b, 0, n)
    return t, a, s


@njit(**_OPTS)
def heap_remove_slot(r, b, slot, t_now):
    """Remove every request in service on ``slot`` (it crashed or was cut off); returns (how many, their summed
    age at ``t_now``)."""
    n = int(r.gen[b, G_HEAP_N])
    j = 0
    removed = 0
    age = 0.0
    while j < n:
        if r.heap_s[b, j] == slot:
            removed += 1
            age += t_now - r.heap_a[b, j]
            n -= 1
            r.heap_t[b, j], r.heap_a[b, j], r.heap_s[b, j] = r.heap_t[b, n], r.heap_a[b, n], r.heap_s[b, n]
        else:
            j += 1
    for j in range(n // 2 - 1, -1, -1):  # heapify what is left
        _sift_down(r.heap_t, r.heap_a, r.heap_s, b, j, n)
    r.gen[b, G_HEAP_N] = n
    return removed, age


@njit(**_OPTS)
def ring_push(r, b, slot, t_arrival):
    """Queue a request on ``slot`` (the caller checks there is room)."""
    cap = r.ring.shape[2]
    n = r.slot_i[b, slot, Q_QLEN]
    r.ring[b, slot, (r.slot_i[b, slot, Q_QHEAD] + n) % cap] = t_arrival
    r.slot_i[b, slot, Q_QLEN] = n + 1


@njit(**_OPTS)
def ring_pop(r, b, slot):
    """The arrival time of the oldest request waiting on ``slot``, removed from its queue."""
    head = r.slot_i[b, slot, Q_QHEAD]
    a = r.ring[b, slot, head]
    r.slot_i[b, slot, Q_QHEAD] = (head + 1) % r.ring.shape[2]
    r.slot_i[b, slot, Q_QLEN] -= 1
    return a


@njit(**_OPTS)
def ring_age(r, b, slot, t_now):
    """Summed age at ``t_now`` of the requests waiting on ``slot``."""
    cap = r.ring.shape[2]
    head = r.slot_i[b, slot, Q_QHEAD]
    age = 0.0
    for j in range(r.slot_i[b, slot, Q_QLEN]):
        age += t_now - r.ring[b, slot, (head + j) % cap]
    return age


@njit(**_OPTS)
def heap_age(r, b, t_now):
    """Summed age at ``t_now`` of the requests in service."""
    age = 0.0
    for j in range(int(r.gen[b, G_HEAP_N])):
        age += t_now - r.heap_a[b, j]
    return age


@njit(**_OPTS)
def buffer_age(r, b, t_now):
    """Summed age at ``t_now`` of the requests in the activator's buffer (platform mode; none otherwise)."""
    cap = r.act_ring.shape[1]
    head = int(r.gen[b, G_ACT_HEAD])
    age = 0.0
    for j in range(int(r.gen[b, G_ACT_LEN])):
        age += t_now - r.act_ring[b, (head + j) % cap]
    return age
