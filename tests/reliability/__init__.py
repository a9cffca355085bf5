"""Reliability and security proofs: fault matrix, crash safety, readers during writes, bad
inputs, secrets and access. Quick variants by default; RELIABILITY_FULL=1 (`make reliability`)
runs the full ones. The figures they measure are printed at the end of the run and written to
build/reliability/figures-<quick|full>.json; docs/RELIABILITY.md quotes them."""
