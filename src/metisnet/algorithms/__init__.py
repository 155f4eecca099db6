"""Privacy-preserving algorithms built on mpc/he: statistics, PSI and joins, regressions, SQL."""
