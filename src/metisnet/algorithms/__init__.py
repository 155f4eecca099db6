"""Privacy-preserving algorithms built on mpc/he: statistics, PSI and joins, regressions.

Every committee function takes the member's :class:`~metisnet.mpc.MpcContext` first and is
called by all three members in the same order (SPMD). Results go to ``to`` (``None``: all
members; an index or list: only those, via :func:`metisnet.mpc.reveal_to`); the others get
``None``. Data nodes are dealers outside the committee.

API summary
-----------
Data nodes and receivers (:mod:`metisnet.algorithms.common`)::

    deal(values, rng, frac_bits=16) -> [pair0, pair1, pair2]     # fixed point, pair i -> member i
    deal_ints(values, rng) -> [pairs]                            # ids, indices, one-hot 0/1
    receive(ctx, pair, frac_bits=None) -> SharedArray            # member side (checked in
                                                                 # malicious mode)
    pairs_for_outside(x) -> pair ; open_outside([p0, p1, p2], frac_bits=) -> array
    check_min_rows(n, k) ; suppress_small(ctx, counts, k, values) (oblivious k policy)

Statistics (:mod:`metisnet.algorithms.stats`; x is (n, d) fixed point, n public)::

    stack_rows([x_node...]) (horizontal) ; stack_columns([x_node...]) (aligned vertical)
    count(ctx, x, mask=None, k=1, to=None)
    column_sums / mean / variance(ddof=1) / std / covariance / correlation(ctx, x, k=, to=)
    minimum / maximum(ctx, x, k=, to=) ; median(ctx, x) ; quantiles(ctx, x, qs, bound_bits=20)
    histogram(ctx, x, edges, k=, to=) -> (bins, d) counts, groups below k released as 0
    group_stats(ctx, onehot, x, k=, to=) -> (counts, sums, means)
    shared_mean / shared_variance / shared_covariance / select_ranks -> SharedArray
    div_public(ctx, x, m) ; cross_products(ctx, a, b, columnwise=False)

Private set intersection and joins (:mod:`metisnet.algorithms.psi`, semi-honest committee)::

    tags(ids, key) ; prepare(ids, key, rng, payload=None) -> [PsiShares x 3]   (data node)
    intersection_size(ctx, [inputs], to=None) -> int | None
    intersection_to(ctx, [inputs], owner=j, to=r) -> sorted row indices of input j | None
    private_join(ctx, [inputs]) -> Joined(size, rows: SharedArray, indices: [SharedArray])

Two-party ECDH-PSI (:mod:`metisnet.algorithms.psi_ecdh`; two data nodes, no committee)::

    ecdh_psi(channel2, ids, receiver=0, mode="intersection"|"size", rng=None)
    EcdhPsi(ids, rng): blind() / respond(blinded, shuffle=) / finish(tags, points)

Regression (:mod:`metisnet.algorithms.regression`)::

    linear_regression(ctx, x, y, method="newton"|"gram"|"sgd", lam=0.0, to=None,
                      keep_shared=False) -> Model | SharedModel | None
    logistic_regression(ctx, x, y, epochs=10, batch_size=32, lr=1.0, sigmoid="hard"|"exact",
                        to=None, keep_shared=False) -> Model | SharedModel | None
    predict(ctx, shared_model, x, probability=False) -> SharedArray
    Model(coef, intercept, kind).predict(x) / .decision_function(x)

Security modes: statistics and regressions run in both modes of the context (the default
malicious mode checks every product and opening); the committee PSI and private join are
semi-honest only and refuse a malicious context.
"""
