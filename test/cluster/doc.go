// Package cluster tests tokenserver on Proto.Actor's cluster with real OS
// processes on loopback: the examples/cluster binary as front and handler
// nodes, clients in the test process. A handler node holding a busy grain
// is killed with SIGKILL, and a front node is killed while its clients
// reconnect to another one (token/2 clients, whose tokens the grain handles
// once, and token/1 clients), with the automanaged membership and with a
// real etcd server (test/cluster/etcdserver, a module of its own that the
// tests build). Three nodes start and stop quietly; a node's gRPC port is
// probed with Proto.Actor's own gRPC client, as an intruder would. Every
// process started is ended and waited for. The tests run on Linux (they
// use Pdeathsig so that no node outlives a test process that dies).
package cluster
