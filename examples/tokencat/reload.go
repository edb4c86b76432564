package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// serve's TLS material over its life: --crl, SIGHUP (read the files again
// and reload them in place), the certificate's expiry (a warning, and a
// metric with --metrics).

// defaultExpiryWarning is the default of --expiry-warning: 30 days.
const defaultExpiryWarning = 30 * 24 * time.Hour

// expiryMetric is the OpenTelemetry name of the gauge of seconds until the
// server certificate expires: tokenserver_tls_certificate_expiry_seconds in
// Prometheus.
const expiryMetric = "tokenserver.tls.certificate.expiry"

// meterName is the meter of tokencat's own metrics.
const meterName = "github.com/tokenserver/tokenserver/examples/tokencat"

// reloadFlags are serve's flags about the material's life.
type reloadFlags struct {
	crl           string
	expiryWarning time.Duration
}

func addReloadFlags(f *pflag.FlagSet, r *reloadFlags) {
	f.StringVar(&r.crl, "crl", "", "certificate revocation list `FILE` (PEM or DER) signed by --ca: the client certificates it revokes are refused")
	f.DurationVar(&r.expiryWarning, "expiry-warning", defaultExpiryWarning,
		"log a warning, at start and on each SIGHUP, when the server certificate expires within `D` (0: never)")
}

// serverTLS completes the options read from the TLS flags: client
// certificates required (mutual TLS), and --crl read.
func (r reloadFlags) serverTLS(o tlsio.Options) (tlsio.Options, error) {
	o.RequestCert = true
	if r.crl != "" {
		crl, err := os.ReadFile(r.crl)
		if err != nil {
			return tlsio.Options{}, fmt.Errorf("read crl file: %w", err)
		}
		o.CRL = crl
	}
	return o, nil
}

// tlsLife follows the server's TLS material: it reloads it on SIGHUP, logs
// it, warns of its expiry.
type tlsLife struct {
	flags  reloadFlags
	files  tlsFlags
	server *actors.Server
	inUse  tlsio.Options
	log    *slog.Logger
}

// startTLSLife logs the material the server starts with (and warns if its
// certificate expires soon), and with a MeterProvider reports its expiry as
// a metric.
func startTLSLife(flags reloadFlags, files tlsFlags, server *actors.Server, inUse tlsio.Options, log *slog.Logger, mp metric.MeterProvider) (*tlsLife, error) {
	l := &tlsLife{flags: flags, files: files, server: server, inUse: inUse, log: log}
	info := server.TLSInfo()
	log.Info("TLS material", append(certAttrs(info), "crl_revoked_serials", info.Revoked)...)
	l.warn(info, time.Now())
	if mp == nil {
		return l, nil
	}
	_, err := mp.Meter(meterName).Float64ObservableGauge(expiryMetric, metric.WithUnit("s"),
		metric.WithDescription("Seconds until the server certificate in use expires (negative once it has); it changes with a reload (SIGHUP)."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if c := server.TLSInfo().Certificate; c != nil {
				o.Observe(time.Until(c.NotAfter).Seconds(), metric.WithAttributes(attribute.String("serial", serialHex(c.SerialNumber))))
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	return l, nil
}

// reload reads the TLS files again (the passphrase file too; a passphrase
// from $TOKENCAT_PASSPHRASE, which is unset once read, is the one read at
// start) and replaces the server's material with them. A file that cannot
// be read, or material the server refuses, is logged and changes nothing.
func (l *tlsLife) reload() {
	next, err := l.files.read(func() (string, error) {
		if l.files.passphraseFile == "" {
			return l.inUse.Passphrase, nil
		}
		return l.files.passphrase()
	})
	if err == nil {
		next, err = l.flags.serverTLS(next)
	}
	before := l.server.TLSInfo()
	if err == nil {
		err = l.files.explainPassphraseError(l.server.ReloadTLS(next), next.Passphrase)
	}
	if err != nil {
		l.log.Error("SIGHUP: TLS reload failed; serving on with the material in use", "err", err)
		return
	}
	after := l.server.TLSInfo()
	attrs := append(certAttrs(after), "certificate", changed(!sameCert(before, after)),
		"ca", changed(!bytes.Equal(l.inUse.CA, next.CA)), "crl_revoked_serials", after.Revoked)
	l.inUse = next
	if c := before.Certificate; c != nil && !sameCert(before, after) {
		attrs = append(attrs, "previous_serial", serialHex(c.SerialNumber), "previous_not_after", c.NotAfter.UTC().Format(time.RFC3339))
	}
	l.log.Info("SIGHUP: TLS material reloaded", attrs...)
	l.warn(after, time.Now())
}

// warn logs a warning when the certificate of info has expired or expires
// within --expiry-warning of now, and when the revocation lists are past
// their next update.
func (l *tlsLife) warn(info tlsio.Info, now time.Time) {
	if c := info.Certificate; c != nil && l.flags.expiryWarning > 0 {
		switch left := c.NotAfter.Sub(now); {
		case left <= 0:
			l.log.Warn("the server certificate has expired: replace it and send SIGHUP", certAttrs(info)...)
		case left <= l.flags.expiryWarning:
			l.log.Warn("the server certificate expires soon: replace it and send SIGHUP",
				append(certAttrs(info), "expires_in", left.Round(time.Minute).String())...)
		}
	}
	if next := info.CRLNextUpdate; !next.IsZero() && now.After(next) {
		l.log.Warn("the revocation list is past its next update: fetch a newer one and send SIGHUP",
			"next_update", next.UTC().Format(time.RFC3339))
	}
}

// certAttrs are the log attributes of the certificate of info.
func certAttrs(info tlsio.Info) []any {
	c := info.Certificate
	if c == nil {
		return nil
	}
	return []any{"serial", serialHex(c.SerialNumber), "subject", c.Subject.String(), "not_after", c.NotAfter.UTC().Format(time.RFC3339)}
}

func sameCert(a, b tlsio.Info) bool {
	return a.Certificate != nil && b.Certificate != nil && a.Certificate.Equal(b.Certificate)
}

func changed(b bool) string {
	if b {
		return "changed"
	}
	return "unchanged"
}

// serialHex is a serial number as openssl x509 -serial prints it: upper
// case hexadecimal, an even number of digits.
func serialHex(n *big.Int) string {
	s := fmt.Sprintf("%X", n)
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}
