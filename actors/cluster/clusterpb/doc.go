// Package clusterpb holds the protobuf messages that cross nodes between a
// tokenserver front node and its handler grains (tokens.proto, generated
// into tokens.pb.go by `make proto`).
package clusterpb
