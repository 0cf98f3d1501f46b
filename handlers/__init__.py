"""One module per operation: how to plan it (pure) and the actions its steps run.

Importing this package registers every operation's planner and actions.
"""

from handlers import cordon, drain, drain_run  # noqa: F401
