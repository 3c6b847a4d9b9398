"""Samplers that turn a score vector into kept indices (docs/algorithms.md §1 and §7).

All functions take a 1-D score array (numpy) and return int64 indices into it.

NaN policy (all samplers): a NaN score is never kept / never drawn. ``N`` in the
count formulas is the full length of ``scores`` (NaNs included), as in the authors'
code, which takes ``len`` of the pool's score column; upstream rules are expected to
have dropped and counted bad samples already (docs/design.md, "Errors").
"""

from __future__ import annotations

import math

import numpy as np

from curate.registry import FRACTION, NAME, SEED, ConfigError, Registry, optional, required

__all__ = [
    "top_fraction",
    "threshold",
    "keep_ratio",
    "scs",
    "scs_reference",
    "hcs",
    "SAMPLERS",
]


def _as_scores(scores) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if s.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    return s


# --------------------------------------------------------------------------- §1
def top_fraction(scores, fraction: float) -> np.ndarray:
    """DataComp / SIEVE top-fraction rule (docs/algorithms.md §1) -> kept indices, ascending.

    ``n = int(N * fraction)``; ``thr = sort_descending(s)[n]``; keep every ``s >= thr``.

    **(quirk)** this keeps ``n + 1`` samples plus every sample tied with the threshold,
    not ``n`` (``fraction = 0`` keeps the maximum and its ties). Reproduced on purpose:
    DataComp's and SIEVE's tables were produced with it.

    Edge cases: ``n >= N`` (``fraction >= 1``, or rounding of ``N * fraction``) keeps
    every non-NaN sample (``sort_descending(s)[N]`` does not exist). NaN scores are
    never kept; they sort after every number in the descending order (as ``-np.sort(-s)``
    puts them), so they never shift the threshold unless fewer than ``n + 1`` scores are
    valid, in which case every valid score is kept (the naive ``s >= NaN`` would keep
    nothing). ``fraction`` must be >= 0.
    """
    s = _as_scores(scores)
    fraction = float(fraction)
    if not fraction >= 0.0:
        raise ValueError(f"fraction must be >= 0, got {fraction}")
    N = s.shape[0]
    valid = ~np.isnan(s) if s.dtype.kind == "f" else np.ones(N, dtype=bool)
    n = int(N * fraction)
    n_valid = int(valid.sum())
    if n >= n_valid:
        return np.flatnonzero(valid).astype(np.int64)
    sv = s[valid]
    # (n)-th largest of the valid scores == sort_descending(s)[n] since NaNs sort last.
    thr = np.partition(sv, sv.shape[0] - 1 - n)[sv.shape[0] - 1 - n]
    return np.flatnonzero(valid & (s >= thr)).astype(np.int64)


def threshold(scores, thr: float) -> np.ndarray:
    """Keep every sample with ``s >= thr`` (§1 / §2 ``--threshold``) -> indices, ascending.

    NaN scores are never kept (``NaN >= thr`` is False).
    """
    s = _as_scores(scores)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(s >= thr).astype(np.int64)


def keep_ratio(scores, ratio: float) -> np.ndarray:
    """MoS keep rule (docs/algorithms.md §1) -> kept indices, ascending.

    Keeps exactly ``k = max(1, min(round(N * ratio), N))`` samples: the first ``k``
    after a STABLE descending sort (ties keep the lower index first, like Python's
    ``sorted(..., reverse=True)`` and ``torch.sort(descending=True, stable=True)``).

    Rounding: Python's ``round`` on a float is round-half-to-even ("banker's"),
    and so is ``np.round``; both operate on the same float ``N * ratio``, so whichever
    the MoS code used the count is the same (``round(2.5) == np.round(2.5) == 2``,
    ``round(3.5) == 4``). We use Python ``round``. This differs from
    ``int(N * ratio + 0.5)`` at exact halves only.

    NaN scores rank after every number and are never kept: if fewer than ``k`` scores
    are valid, all valid ones are kept (fewer than ``k``).
    """
    s = _as_scores(scores)
    ratio = float(ratio)
    if not ratio >= 0.0:
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    N = s.shape[0]
    if N == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, min(int(round(N * ratio)), N))
    if s.dtype.kind == "f":
        valid = ~np.isnan(s)
        valid_idx = np.flatnonzero(valid)
        sv = s[valid_idx]
    else:
        valid_idx = np.arange(N)
        sv = s
    if k >= sv.shape[0]:
        return valid_idx.astype(np.int64)
    # Stable descending order: sort (-s) ascending with a stable sort; for unsigned /
    # integer inputs convert to float64 first to negate safely.
    key = -sv.astype(np.float64) if sv.dtype.kind in "uib" else -sv
    order = np.argsort(key, kind="stable")[:k]
    return np.sort(valid_idx[order]).astype(np.int64)


# --------------------------------------------------------------------------- §7
def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def scs_reference(scores, n: int, alpha: float = 0.15, batch_size: int = 100_000, seed=0) -> np.ndarray:
    """Naive Soft Cap Sampling exactly as written in docs/algorithms.md §7 (small pools only).

    Every round: ``p = softmax(s)`` (float64, over the whole pool), draw
    ``G = batch_size`` distinct indices with ``Generator.choice(N, G, replace=False,
    p=p)`` (successive sampling without replacement, like the authors'
    ``np.random.choice``), append them, ``s[drawn] -= alpha``; until exactly ``n``
    indices are drawn (last round draws only the remainder). O(N) per round: this is
    the reference that :func:`scs` is tested against, not for pool-scale use.
    """
    s = _as_scores(scores).astype(np.float64, copy=True)
    rng = _rng(seed)
    N = s.shape[0]
    out = []
    drawn = 0
    while drawn < n:
        g = min(int(batch_size), n - drawn)
        z = s - np.max(s)
        p = np.exp(z)
        p /= p.sum()
        sel = rng.choice(N, size=g, replace=False, p=p)
        out.append(sel)
        s[sel] -= alpha
        drawn += g
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


# Largest exponent used for a clock's time scale; an item whose log-weight lies more
# than this below the current reference is "parked" (probability treated as 0).
_PARK_X = 700.0
# A window is closed after alpha * rounds exceeds this many nats, so that the time
# reference stays within this distance of the largest current log-weight.
_MAX_DRIFT = 50.0


def scs(
    scores,
    n: int,
    alpha: float = 0.15,
    batch_size: int = 100_000,
    seed=0,
    *,
    window: int | None = None,
) -> np.ndarray:
    """Soft Cap Sampling (docs/algorithms.md §7), exact in distribution, fast at pool scale.

    Returns ``n`` int64 indices in rounds of ``G = batch_size``: round ``r`` occupies
    ``out[r*G:(r+1)*G]`` (the last round holds the remainder). Indices never repeat
    inside a round and may repeat across rounds. Order inside a round is unspecified
    (the subset written from it is sorted anyway). Same ``seed`` -> same bytes.

    The definition (see :func:`scs_reference`): each round, draw ``G`` distinct indices
    from ``softmax(s)`` without replacement, then ``s[drawn] -= alpha``.

    Method ("exponential clocks", exact in distribution):

    1. Drawing ``G`` without replacement from ``softmax(s)`` is the same as taking the
       ``G`` largest of ``s_i + Gumbel_i`` (Gumbel-top-k), i.e. the ``G`` SMALLEST of
       ``T_i = E_i / w_i`` with ``E_i ~ Exp(1)``, ``w_i = exp(s_i)``
       (``-log E`` is a standard Gumbel). Fresh noise is needed every round.
    2. Keep one absolute clock ``t_i`` per item. Round ``r`` takes the ``G`` smallest
       clocks; let ``tau`` be the largest of them. Given everything observed so far,
       the clocks of the non-selected items are independent ``Exp(w_i)`` variables
       conditioned on exceeding ``tau`` (order statistics of independent variables),
       so by memorylessness ``t_i - tau`` is again a FRESH, independent ``Exp(w_i)``.
       Their weights do not change, so they keep their clocks. The selected items get
       ``w_i <- w_i * exp(-alpha)`` and a fresh clock ``tau + E/w_i``. Hence, at every
       round boundary, the residual clocks ``t_i - tau`` are i.i.d.-given-the-past
       ``Exp(w_i)`` exactly as in a naive round with brand-new Gumbel noise; by
       induction the whole sequence of rounds has the naive distribution. Only ``G``
       new random numbers are needed per round instead of ``N``.
    3. Finding the ``G`` smallest clocks without an O(N) pass per round: a *window*
       holds every item whose clock is below a horizon ``H`` (one O(N) scan), put in
       blocks of increasing clock ranges (a radix sort of 16-bit keys made of the
       clocks' exponent and top mantissa bits); all other clocks are ``>= H``. While
       the window holds at least ``G`` items, the global ``G`` smallest lie inside it,
       so a round only looks at the leftovers of consumed blocks, the next blocks (until
       they and the leftovers hold ``G`` items; every later block is larger) and the
       re-drawn items whose new clocks fell below ``H``. When fewer than ``G`` remain,
       the next window is built. This bookkeeping does not change which items are
       selected, only how fast they are found.

    Numerics: clocks are float64; at every window start they are shifted by ``-tau``
    to keep precision. Weights are ``exp(s_i - alpha*k_i - c)`` (``k_i`` = times
    drawn so far) where ``c`` stays between the largest current log-weight ``M`` and
    ``M + 50``: a window closes after 50 nats of penalties, and ``c`` is reset to the
    exact ``M`` with one O(N) pass (an exact change of time unit) once it drifted by 25.
    An item more than ~650 nats below the largest log-weight is *parked* (clock = inf,
    probability treated as 0, like the underflow of a float64 softmax at -745) and is
    un-parked with a fresh clock (exact, again by memorylessness) at the first window
    start where it is back within range.

    NaN and ``-inf`` scores are never drawn; ``+inf`` raises. ``G`` is capped at the
    number of drawable items (a round cannot draw more distinct items than exist; the
    naive ``choice`` would raise). ``alpha`` must be >= 0. Memory at pool scale:
    ``N`` float64 clocks + ``N`` uint16 draw counts + the int64 output + a window.

    ``window`` (advanced) is the target number of items per window; the default
    balances the O(N) scan per window against the sort.
    """
    s = _as_scores(scores)
    n = int(n)
    G = int(batch_size)
    alpha = float(alpha)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if G < 1:
        raise ValueError(f"batch_size must be >= 1, got {G}")
    if not (alpha >= 0.0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    N = s.shape[0]
    rng = _rng(seed)
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    if np.isposinf(s).any():
        raise ValueError("scores contain +inf")
    n_valid = 0
    c = -np.inf  # time-scale reference: w_i = exp(s_i - alpha*k_i - c)
    for a in range(0, N, 1 << 20):
        part = s[a : a + (1 << 20)]
        fin = np.isfinite(part)
        nv = int(np.count_nonzero(fin))
        if nv:
            n_valid += nv
            c = max(c, float(part[fin].max()))
    if n_valid == 0:
        raise ValueError("scs: no finite score to draw from")
    G = min(G, n_valid)
    rounds_total = -(-n // G)
    k = np.zeros(N, dtype=np.uint16 if rounds_total < 65535 else np.uint32)

    # Initial clocks t_i = E_i / w_i = E_i * exp(c - s_i), computed in chunks.
    t = rng.standard_exponential(N)
    n_parked = 0
    chunk = 1 << 20
    with np.errstate(over="ignore", invalid="ignore"):
        for a in range(0, N, chunk):
            x = c - s[a : a + chunk].astype(np.float64)  # NaN / +inf for invalid scores
            park = ~(x <= _PARK_X)  # includes NaN
            np.minimum(x, _PARK_X, out=x)
            np.exp(x, out=x)
            tt = t[a : a + chunk]
            tt *= x
            tt[park] = np.inf
            n_parked += int(np.count_nonzero(park & np.isfinite(s[a : a + chunk])))
    if window is None:
        window = 16 * G
    window = max(int(window), 1)

    tau = 0.0  # time at which the current round starts
    drift = 0.0  # alpha * rounds since the last rescale (upper bound of c - max logw)
    H = -np.inf
    E64 = np.zeros(0, dtype=np.int64)
    EF = np.zeros(0, dtype=np.float64)
    C, Ct = E64, EF  # window items, in blocks of increasing clock ranges
    ends = E64  # end position (exclusive) of each block of C
    ptr = 0  # C[:ptr] has been consumed (taken, or moved to R)
    R, Rt = E64, EF  # unsorted leftovers of consumed blocks: all <= C[ptr:]
    P = E64  # items re-drawn into the window (unsorted, any clock < H)
    filled = 0
    force_new_window = True

    while filled < n:
        g = min(G, n - filled)
        if force_new_window or (C.shape[0] - ptr) + R.shape[0] + P.shape[0] < g:
            # ---- new window: rebase / rescale clocks, un-park, scan, sort.
            t -= tau  # exact shift of the time origin to the round boundary
            tau = 0.0
            if drift >= _MAX_DRIFT / 2:
                # Exact change of time unit: c -> M = max current log-weight (M <= c).
                M = _max_logweight(s, k, alpha)
                t *= math.exp(M - c)
                c = M
                drift = 0.0
            if n_parked:
                n_parked = _unpark(t, s, k, alpha, c, rng)
            n_live = n_valid - n_parked
            if n_live < g:
                raise ValueError(
                    f"scs: only {n_live} items have a non-negligible probability, "
                    f"cannot draw {g} distinct ones in a round"
                )
            target = window
            while True:
                H = _horizon(t, target, n_live)
                cand = np.flatnonzero(t < H)
                if cand.shape[0] >= g or H == np.inf:
                    break
                target *= 4
            ct = t[cand]
            key = _block_keys(ct, H)
            order = np.argsort(key, kind="stable")  # radix sort of uint16 keys
            C = cand[order]
            Ct = ct[order]
            ks = key[order]
            ends = np.append(np.flatnonzero(ks[1:] != ks[:-1]) + 1, ks.shape[0])
            del cand, ct, key, ks, order
            ptr = 0
            R, Rt, P = E64, EF, E64
            force_new_window = False

        # ---- one round: the g smallest clocks of R U (next blocks of C) U P. Blocks are
        # added until R and them hold >= g items (or C is exhausted): every later C item
        # is >= all of those, so it cannot be among the g smallest.
        e = ptr
        need = g - R.shape[0]
        if need > 0 and ptr < C.shape[0]:
            j = int(np.searchsorted(ends, ptr + need, side="left"))
            e = int(ends[j]) if j < ends.shape[0] else C.shape[0]
        pool_i = np.concatenate((R, C[ptr:e], P))
        pool_t = np.concatenate((Rt, Ct[ptr:e], t[P]))
        n_rc = R.shape[0] + (e - ptr)
        ptr = e
        if pool_i.shape[0] > g:
            part = np.argpartition(pool_t, g - 1)
            taken = np.zeros(pool_i.shape[0], dtype=bool)
            taken[part[:g]] = True
            sel = pool_i[taken]
            tau = float(pool_t[part[:g]].max())
            R, Rt = pool_i[:n_rc][~taken[:n_rc]], pool_t[:n_rc][~taken[:n_rc]]
            P = P[~taken[n_rc:]]
        else:
            sel = pool_i
            tau = float(pool_t.max())
            R, Rt, P = E64, EF, E64
        # ---- re-draw the selected items' clocks with their penalised weights.
        out[filled : filled + g] = sel
        filled += g
        if filled >= n:
            break
        k[sel] += 1
        x = c - (s[sel].astype(np.float64) - alpha * k[sel])
        park = x > _PARK_X
        np.minimum(x, _PARK_X, out=x)
        newt = tau + rng.standard_exponential(g) * np.exp(x)
        if park.any():
            newt[park] = np.inf
            n_parked += int(np.count_nonzero(park))
        t[sel] = newt
        inwin = newt < H
        if inwin.any():
            P = np.concatenate((P, sel[inwin]))
        drift += alpha
        if drift > _MAX_DRIFT:
            force_new_window = True
    return out


def _block_keys(ct: np.ndarray, H: float) -> np.ndarray:
    """uint16 keys, monotone in the (non-negative float64) clock value.

    The top bits of a non-negative float64 (exponent + 8 mantissa bits) order it; the
    65 536 keys below the horizon's key cover 256 binades, 256 blocks per binade, all
    smaller values share key 0. Only the ORDER of blocks matters for correctness.
    """
    hi = H if math.isfinite(H) else (float(ct.max()) if ct.shape[0] else 0.0)
    top = np.int64(np.array(hi, dtype=np.float64).view(np.uint64) >> np.uint64(44))
    k = (ct.view(np.uint64) >> np.uint64(44)).astype(np.int64)
    k -= top - 65535
    np.clip(k, 0, 65535, out=k)
    return k.astype(np.uint16)


def _horizon(t: np.ndarray, target: int, n_live: int) -> float:
    """A clock value H such that about ``target`` clocks are below it (estimate)."""
    N = t.shape[0]
    if target >= n_live:
        return np.inf
    stride = max(1, N // (1 << 20))
    sample = t[::stride]
    q = min(1.0, target / N * 1.05 + 1.0 / sample.shape[0])
    j = min(sample.shape[0] - 1, int(q * sample.shape[0]))
    h = float(np.partition(sample, j)[j])
    return h


def _max_logweight(s, k, alpha) -> float:
    """max_i (s_i - alpha * k_i) over finite scores, in one chunked pass."""
    m = -np.inf
    chunk = 1 << 20
    with np.errstate(invalid="ignore"):
        for a in range(0, s.shape[0], chunk):
            v = s[a : a + chunk].astype(np.float64) - alpha * k[a : a + chunk]
            v[~np.isfinite(v)] = -np.inf
            m = max(m, float(v.max()))
    return m


def _unpark(t, s, k, alpha, c, rng) -> int:
    """Give parked items back in range a fresh clock (exact by memorylessness)."""
    idx = np.flatnonzero(np.isinf(t))
    with np.errstate(invalid="ignore"):
        x = c - (s[idx].astype(np.float64) - alpha * k[idx])
    ok = x <= _PARK_X  # False for NaN / -inf scores
    back = idx[ok]
    t[back] = rng.standard_exponential(back.shape[0]) * np.exp(x[ok])
    return int(np.count_nonzero(~ok & np.isfinite(s[idx])))


def hcs(scores, n: int, cap: int, seed=0) -> np.ndarray:
    """Hard Cap Sampling (docs/algorithms.md §7) -> ``n`` int64 indices in draw order.

    Draw with replacement from the FIXED ``p = softmax(s)``; an index that has been
    drawn ``cap`` times is no longer drawn (its later draws are rejected, which is the
    same as renormalising ``p`` over the indices still under their cap). Exact: an
    i.i.d. stream from ``p`` is drawn in bulk, each index's first ``cap - count``
    occurrences are accepted in stream order, and after each bulk step ``p`` is
    renormalised over the uncapped indices (equivalent to continuing the stream with
    rejection). NaN / ``-inf`` scores are never drawn; ``+inf`` raises; ``n`` larger
    than ``cap`` times the number of drawable indices raises.
    """
    s = _as_scores(scores)
    n = int(n)
    cap = int(cap)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    rng = _rng(seed)
    s = s.astype(np.float64)
    if np.isposinf(s).any():
        raise ValueError("scores contain +inf")
    active = np.flatnonzero(np.isfinite(s))
    if n > cap * active.shape[0]:
        raise ValueError(f"hcs: cannot draw {n} samples with cap {cap} from {active.shape[0]} drawable items")
    N = s.shape[0]
    counts = np.zeros(N, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        remaining = n - filled
        z = s[active] - s[active].max()
        p = np.exp(z)
        p /= p.sum()
        m = remaining + remaining // 8 + 16
        draws = active[rng.choice(active.shape[0], size=m, p=p)]
        order = np.argsort(draws, kind="stable")
        sd = draws[order]
        first = np.empty(m, dtype=bool)
        first[0] = True
        first[1:] = sd[1:] != sd[:-1]
        starts = np.flatnonzero(first)
        rank = np.arange(m) - np.repeat(starts, np.diff(np.append(starts, m)))
        accept = np.empty(m, dtype=bool)
        accept[order] = rank < cap - counts[sd]
        acc = draws[accept][:remaining]
        out[filled : filled + acc.shape[0]] = acc
        filled += acc.shape[0]
        np.add.at(counts, acc, 1)
        active = active[counts[active] < cap]
    return out


# ------------------------------------------------------------- samplers of fused scores
# A ``fused_score`` selection names one of these (``sampler``) with its parameters; each turns a
# pool's uids and fused scores into the subset's uids (repeats mean "repeat this sample").

SAMPLERS = Registry("sampler", key="sampler")


@SAMPLERS.register("top_fraction", params={"fraction": required(FRACTION, "the fraction kept (docs/algorithms.md §1)")})
def sample_top_fraction(uids: list[str], scores: np.ndarray, params: dict) -> list[str]:
    """The top ``fraction`` by DataComp's threshold rule (§1)."""
    return [uids[i] for i in np.sort(top_fraction(scores, params["fraction"]))]


#: ``n: samples_seen``: SCS draws the training budget of a recipe (docs/algorithms.md §7).
SAMPLES_SEEN = "samples_seen"


def _scs_recipe(config: dict, entry: dict) -> str:
    """The recipe whose samples seen ``n: samples_seen`` draws: the entry's own, else the scale's."""
    return entry["recipe"] if entry.get("recipe") is not None else config["scales"][config["scale"]]["recipe"]


def _check_scs(config: dict, where: str, entry: dict) -> None:
    if entry["n"] != SAMPLES_SEEN or "scales" not in config:
        return
    recipe = _scs_recipe(config, entry)
    if recipe in config.get("recipes", {}) and not config["recipes"][recipe].get("samples_seen"):
        raise ConfigError(
            f"{where}.n: recipe {recipe!r} has no samples_seen to draw; name the recipe (`recipe`) or a count (`n`)"
        )


def resolve_scs(config: dict, entry: dict) -> dict:
    """The entry with ``n: samples_seen`` replaced by the count: the ``samples_seen`` of its recipe
    (the scale's when it names none). The workflow calls this when it hands a selection to its job:
    a subset file is made for the pool, not for a recipe, so the recipe is the config's choice."""
    if entry["n"] != SAMPLES_SEEN:
        return entry
    recipe = _scs_recipe(config, entry)
    return entry | {"n": int(config["recipes"][recipe]["samples_seen"]), "recipe": recipe}


def move_scs(selection: dict, config: dict, scale: dict) -> None:
    """In place, when a scale moves the paper rows onto its own pool and recipe: a selection that
    draws a named recipe's samples seen draws the scale recipe's instead, in as many rounds (``G``
    scaled by the same ratio: FLYT's medium setting, 128M in rounds of 100K, and its small one,
    12.8M in rounds of 10K, both take 1 280 rounds)."""
    recipe = selection.get("recipe")
    own = config["recipes"].get(recipe, {}).get("samples_seen") if recipe is not None else None
    if not own:
        return  # nothing named, or a name the config check will refuse
    target = config["recipes"].get(scale["recipe"], {}).get("samples_seen")
    if selection["n"] == SAMPLES_SEEN and target and recipe != scale["recipe"]:
        selection["batch_size"] = max(1, int(selection["batch_size"] * target / own))
    selection["recipe"] = None


@SAMPLERS.register(
    "scs",
    params={
        "alpha": required({"type": "number", "minimum": 0}, "the penalty subtracted from a drawn sample's score"),
        "seed": required(SEED),
        "batch_size": required({"type": "integer", "minimum": 1}, "G: distinct samples drawn per round (a count)"),
        "n": optional(
            {"oneOf": [{"type": "integer", "minimum": 1}, {"const": SAMPLES_SEEN}]},
            SAMPLES_SEEN,
            "how many samples are drawn: a count, or samples_seen: the training budget of `recipe`",
        ),
        "recipe": optional(
            NAME, None, "whose samples_seen `n: samples_seen` draws (default: the scale's recipe)", ref="recipes"
        ),
        "standardise": optional(
            {"type": "boolean"}, False, "z-score the fused scores over the pool first (FLYT samples them as given)"
        ),
    },
    check=_check_scs,
    resolve=resolve_scs,
    move=move_scs,
)
def sample_scs(uids: list[str], scores: np.ndarray, params: dict) -> list[str]:
    """Soft Cap Sampling (§7): ``n`` draws in rounds of ``G = batch_size`` distinct samples, from the
    scores as given (logits: M-FLYT's head outputs, an IN-weighted sum), as FLYT samples them.

    ``n`` is a count; ``samples_seen`` must have been resolved to one (`resolve_scs`). With
    ``standardise`` the scores are z-scored over the pool first (an option for scores that are not
    logits, raw cosines say, whose softmax is almost uniform; FLYT has no such step)."""
    from curate.selection.fusion import zscore

    if params["n"] == SAMPLES_SEEN:
        raise ValueError("scs: n is `samples_seen`; the workflow resolves it to a count (resolve_scs) first")
    scores = np.asarray(scores, dtype=np.float64)
    if params["standardise"]:
        scores = zscore(scores)
    drawn = scs(
        scores, int(params["n"]), alpha=params["alpha"], batch_size=int(params["batch_size"]), seed=params["seed"]
    )
    return [uids[i] for i in drawn]
