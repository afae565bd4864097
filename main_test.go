package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestRunRefusesWhatDoesNotExist(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string
	}{
		{nil, "a subcommand is required"},
		{[]string{"tokenreview"}, `unknown subcommand "tokenreview"`},
		{[]string{"server", "--listen"}, "flag needs an argument"},
		{[]string{"server", "--trusted-proxies", "10.0.0.0/33"}, "not a CIDR"},
		{[]string{"server", "--trusted-proxies", "ingress.example"}, "neither a CIDR nor an address"},
		{[]string{"server", "--failed-auth-per-source", "0/1m"}, "N/duration"},
		{[]string{"server", "--failed-tokens-per-source", "20"}, "N/duration"},
		{[]string{"server", "--tokenreview-listen", ":9443", "--tokenreview-tls-cert-file", "tls.crt", "--tokenreview-tls-key-file", "tls.key"},
			"--tokenreview-listen is set but --tokenreview-client-ca-file is not: the tokenreview listener serves mutual TLS only"},
		{[]string{"server", "--tokenreview-client-ca-file", "ca.crt"}, "--tokenreview-client-ca-file is set but --tokenreview-listen is not"},
		{[]string{"server", "--tokenreview-groups-prefix", ""}, "groups prefix \"\": want a non-empty prefix"},
		{[]string{"server", "--tokenreview-username-prefix", "system:"}, "must not start with system:"},
		{[]string{"kube-authn-config", "--policy", "orders"}, "--namespace, --policy and --audience are required"},
		{[]string{"manager", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"manager", "extra"}, "unexpected arguments"},
		{[]string{"manager", "--log-format", "xml"}, "--log-format"},
		{[]string{"manager", "--log-level", "loud"}, "--log-level"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		err := run(tc.args, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.wantErr) {
			t.Errorf("run(%q) = %v (stderr %q), want an error containing %q", tc.args, err, stderr.String(), tc.wantErr)
		}
	}
	var stderr bytes.Buffer
	if err := run([]string{"help"}, &stderr); err != nil || !strings.Contains(stderr.String(), "authframework manager") {
		t.Errorf("help: err %v, output %q", err, stderr.String())
	}
}

func TestParseLevel(t *testing.T) {
	cases := map[string]zapcore.Level{"info": zapcore.InfoLevel, "debug": zapcore.DebugLevel, "error": zapcore.ErrorLevel, "0": 0, "2": -2}
	for in, want := range cases {
		got, err := parseLevel(in)
		if err != nil || got != want {
			t.Errorf("parseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "11", "2x", "verbose"} {
		if _, err := parseLevel(bad); err == nil {
			t.Errorf("parseLevel(%q) accepted", bad)
		}
	}
}

func TestLoggerWritesJSON(t *testing.T) {
	var out bytes.Buffer
	logger, err := (&logOptions{level: "info", format: "json"}).build(&out)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hello", "clientID", "billing")
	logger.V(1).Info("debug line hidden at info")
	s := out.String()
	if !strings.HasPrefix(s, "{") || !strings.Contains(s, `"clientID":"billing"`) || strings.Contains(s, "hidden") {
		t.Errorf("unexpected log output: %s", s)
	}
}
