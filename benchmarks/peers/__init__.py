"""Peer baselines run at prefrl's settings, each in its own virtualenv (see ``benchmarks.peers.run``)."""
