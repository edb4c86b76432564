package main

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdTouchEvery is how often a node touches its own membership key in
// etcd (etcdTouch).
const etcdTouchEvery = 2 * time.Second

// etcdTouch works around a race in Proto.Actor's etcd provider: a node
// lists the members, then starts its watch in a goroutine, from the
// current revision rather than the one it listed at. A member whose key is
// written between the two is never seen, until its key changes (on a
// loaded machine, nodes started together missed each other for good). So
// each node rewrites its own key every etcdTouchEvery, its value and its
// lease unchanged (WithIgnoreValue, WithIgnoreLease): every watch sees a
// PUT, and a node that missed the member adds it. A node that saw it sees
// no change, and prints nothing.
type etcdTouch struct {
	client *clientv3.Client
	key    string
	warn   func(error) // the first failed touch
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// startEtcdTouch touches key through a client of its own, made from cfg,
// until stopped; warn gets the first touch that fails.
func startEtcdTouch(cfg clientv3.Config, key string, warn func(error)) (*etcdTouch, error) {
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &etcdTouch{client: client, key: key, warn: warn, stop: cancel}
	t.done.Add(1)
	go t.run(ctx)
	return t, nil
}

func (t *etcdTouch) run(ctx context.Context) {
	defer t.done.Done()
	tick := time.NewTicker(etcdTouchEvery)
	defer tick.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		put, cancel := context.WithTimeout(ctx, etcdTouchEvery)
		// etcd away or the key gone with its lease: the provider, which
		// keeps the lease alive, reports it too; said here once.
		_, err := t.client.Put(put, t.key, "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease())
		cancel()
		if err != nil && !warned && ctx.Err() == nil {
			warned = true
			t.warn(err)
		}
	}
}

// close stops touching, before the provider deletes the key.
func (t *etcdTouch) close() {
	t.stop()
	t.done.Wait()
	_ = t.client.Close()
}
