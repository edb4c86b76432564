// Command etcdserver runs a single-member etcd server for test/cluster,
// from go.etcd.io/etcd/server/v3's embed package: the real server, in a
// process of its own, with its data in --dir. Clients connect at
// --client-url (http://, or https:// with --cert, --key and --ca: mutual
// TLS, client certificates required), its peer port is --peer-url. It
// prints "etcd VERSION ready on URL" on stdout once it serves, and stops on
// SIGINT or SIGTERM. It is a module of its own, so that etcd's
// dependencies stay out of the main module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdserver:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "data directory (required)")
	clientURL := flag.String("client-url", "http://127.0.0.1:2379", "URL clients connect to")
	peerURL := flag.String("peer-url", "http://127.0.0.1:2380", "URL of the peer port")
	cert := flag.String("cert", "", "https: server certificate file")
	key := flag.String("key", "", "https: server key file")
	ca := flag.String("ca", "", "https: CA file of the client certificates (required from every client)")
	logLevel := flag.String("log-level", "error", "etcd's log level on stderr")
	flag.Parse()
	if *dir == "" {
		return errors.New("--dir is required")
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		return err
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = *logLevel
	// One member on loopback: a short election, so that it leads sooner.
	cfg.TickMs, cfg.ElectionMs = 50, 500
	if cu.Scheme == "https" {
		cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = *cert, *key
		cfg.ClientTLSInfo.TrustedCAFile = *ca
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		return errors.New("not ready within 60 s")
	case <-ctx.Done():
		return nil
	}
	fmt.Printf("etcd %s ready on %s\n", version.Version, cu)
	select {
	case err := <-e.Err():
		return err
	case <-ctx.Done():
		return nil
	}
}
