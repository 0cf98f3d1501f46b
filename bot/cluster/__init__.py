"""The cluster as the bot sees it: the official kubernetes client with retries (kube.py) and
the read-only snapshot that planners work on (snapshot.py, pure)."""
