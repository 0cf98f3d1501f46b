"""The lab API's storage in a real etcd (Debian's etcd-server 3.4, run by the control-plane
machine's kubelet from kubeadm's etcd.yaml): kube-apiserver's key layout, a client for etcd's
JSON gateway, and the cache the API serves from (docs/lab.md, "The API's etcd")."""
