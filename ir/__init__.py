"""ir: forensic evidence capture and incident response for containers and Kubernetes.

Rooms (dependencies point down this list): cli -> cluster -> playbook/serve -> replay
-> collect -> runtime -> bundle -> store; `records`, `clock` and `errors` are shared below all.
"""

__version__ = "0.1.0"
TOOL_NAME = "ir"
