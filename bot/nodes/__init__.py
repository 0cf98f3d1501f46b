"""The nodes as machines: SSH to each node (paramiko), with strict host keys, deadlines and an
audit of every command. Independent of the job engine and of the cluster client."""
