"""The Channels tutorial design, as a reference for bench/loadtest.py (`--target naive`)."""
