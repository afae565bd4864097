// Command bench runs, in one sitting over loopback with wrk, the auth
// server's /validate (without and with its result cache, over a store of
// --accounts accounts) next to its peers: a bare Go handler that does no
// crypto, a bare Go handler that only verifies the ES256 JWT with go-jose,
// and oauth2-proxy verifying the same token from our discovery document.
// Each is driven directly and behind nginx configured as ingress-nginx
// renders an auth-url (auth_request), with the same token, connections and
// duration; it prints req/s, p50/p99 latency, CPU per request and the
// ratios (peers.go). With --flood it instead runs real nginx in front of
// /validate and measures a valid client's throughput alone and under a
// flood of forged tokens from another source (flood.go). `make bench` runs
// both.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "wrk duration per target")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	accounts := flag.Int("accounts", 10000, "accounts in the auth server's store besides the one the token belongs to")
	rounds := flag.Int("rounds", 1, "measure every target this many times, interleaved, and report the median")
	oauth2Proxy := flag.String("oauth2-proxy", "bin/oauth2-proxy-v7.15.6", "the oauth2-proxy binary (make tools builds it); empty leaves it out")
	oauth2ProxyMode := flag.String("oauth2-proxy-mode", "oidc", "how oauth2-proxy verifies bearer tokens: oidc (--oidc-issuer-url, --client-id=<audience>) or extra (--extra-jwt-issuers=<issuer>=<audience>)")
	only := flag.String("only", "", "measure only the targets whose name contains one of these |-separated strings")
	noNginx := flag.Bool("no-nginx", false, "skip the targets behind nginx")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the in-process servers) to this file")
	tokenMode := flag.Bool("token-endpoint", false, "measure POST /token (client credentials, ES256) over HTTP with keep-alive instead of the peers")
	tokenClients := flag.Int("token-clients", 8, "with --token-endpoint: the clients the connections take turns as")
	floodMode := flag.Bool("flood", false, "measure a valid client through nginx alone and under a flood of forged tokens (duration is per phase, three phases)")
	validShare := flag.Float64("valid-share", 0.4, "with --flood: the valid client's offered rate as a share of its unpaced rate alone")
	floodShare := flag.Float64("flood-share", 0.4, "with --flood: the flood's offered rate as a share of the valid client's unpaced rate alone")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	switch {
	case *tokenMode:
		err = runTokens(peerOptions{duration: *duration, conns: *conns, threads: *threads, accounts: *accounts, rounds: max(*rounds, 1)}, max(*tokenClients, 1))
	case *floodMode:
		err = runFlood(*duration, min(*conns, 16), *validShare, *floodShare)
	default:
		err = runPeers(peerOptions{duration: *duration, conns: *conns, threads: *threads, accounts: *accounts, rounds: max(*rounds, 1),
			oauth2Proxy: *oauth2Proxy, oauth2ProxyMode: *oauth2ProxyMode, only: *only, nginx: !*noNginx})
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
