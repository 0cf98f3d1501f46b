"""The lab's machines: every node is a small Linux machine that a real SSH client reaches.

The lab side (this package) builds each machine's files, runs it in namespaces of its own
with a real sshd, watches its state and reflects it in the API (lab/machines/kubelet.py).
What runs inside a machine (its apt-get, systemctl, kubelet, ...) lives in
lab/machines/programs/ and uses the standard library only, so it starts fast.
"""
