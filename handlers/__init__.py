"""The operations, one module (or package) each. Each declares a module-level `Operation`
(bot/contract/operation.py); the bot finds them all by walking this package, so adding an
operation touches no other file. `resources.py` declares the resources operations name.
"""
