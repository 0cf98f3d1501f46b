"""The domain: Kubernetes versions and their skew policy, label selectors, ids, durations and
the text rules of chat. Pure functions; nothing here does I/O or imports another layer."""
