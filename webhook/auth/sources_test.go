package auth

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestSourceAddress(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.7, 2001:db8:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		peer    string
		xff     []string
		realIP  []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxy trusted: peer", "203.0.113.9:5000", nil, nil, nil, "203.0.113.9"},
		{"untrusted peer: spoofed X-Forwarded-For ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, nil, trusted, "203.0.113.9"},
		{"untrusted peer: spoofed X-Real-IP ignored", "203.0.113.9:5000", nil, []string{"198.51.100.1"}, trusted, "203.0.113.9"},
		{"nothing trusted: headers ignored even from a proxy address", "10.0.0.5:5000", []string{"198.51.100.1"}, []string{"198.51.100.2"}, nil, "10.0.0.5"},
		{"trusted peer: its X-Forwarded-For hop", "10.0.0.5:5000", []string{"198.51.100.1"}, nil, trusted, "198.51.100.1"},
		{"trusted peer: rightmost untrusted hop, not the client's claim", "10.0.0.5:5000", []string{"1.2.3.4, 198.51.100.1, 10.0.0.9"}, nil, trusted, "198.51.100.1"},
		{"several header lines read in order", "10.0.0.5:5000", []string{"1.2.3.4", "198.51.100.1", "10.0.0.9"}, nil, trusted, "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.0.0.5:5000", []string{"10.1.1.1, 192.168.1.7"}, nil, trusted, "10.1.1.1"},
		{"X-Forwarded-For wins over X-Real-IP", "10.0.0.5:5000", []string{"198.51.100.1"}, []string{"198.51.100.2"}, trusted, "198.51.100.1"},
		{"trusted peer without X-Forwarded-For: X-Real-IP", "10.0.0.5:5000", nil, []string{"198.51.100.2"}, trusted, "198.51.100.2"},
		{"hop with a port", "10.0.0.5:5000", []string{"198.51.100.1:4711"}, nil, trusted, "198.51.100.1"},
		{"IPv6 hop in brackets with a port", "10.0.0.5:5000", []string{"[2001:db8:9::1]:443"}, nil, trusted, "2001:db8:9::1"},
		{"IPv4-mapped IPv6 hop", "10.0.0.5:5000", []string{"::ffff:198.51.100.1"}, nil, trusted, "198.51.100.1"},
		{"IPv6 trusted peer", "[2001:db8:1::5]:8080", []string{"198.51.100.1"}, nil, trusted, "198.51.100.1"},
		{"malformed hop ends the walk at the last good one", "10.0.0.5:5000", []string{"198.51.100.3, bogus, 10.0.0.9"}, nil, trusted, "10.0.0.9"},
		{"malformed hop after an untrusted one is never reached", "10.0.0.5:5000", []string{"bogus, 198.51.100.1"}, nil, trusted, "198.51.100.1"},
		{"malformed rightmost hop: as if absent, X-Real-IP", "10.0.0.5:5000", []string{"198.51.100.3, not-an-ip"}, []string{"198.51.100.2"}, trusted, "198.51.100.2"},
		{"malformed rightmost hop and no X-Real-IP: the peer", "10.0.0.5:5000", []string{"198.51.100.3,"}, nil, trusted, "10.0.0.5"},
		{"empty X-Forwarded-For", "10.0.0.5:5000", []string{""}, nil, trusted, "10.0.0.5"},
		{"hop with a zone refused", "10.0.0.5:5000", []string{"fe80::1%eth0"}, nil, trusted, "10.0.0.5"},
		{"malformed X-Real-IP: the peer", "10.0.0.5:5000", nil, []string{"198.51.100.2, 198.51.100.3"}, trusted, "10.0.0.5"},
		{"two X-Real-IP lines: the peer", "10.0.0.5:5000", nil, []string{"198.51.100.2", "198.51.100.3"}, trusted, "10.0.0.5"},
		{"unreadable peer", "pipe", []string{"198.51.100.1"}, nil, trusted, "invalid IP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.xff {
				h.Add("X-Forwarded-For", v)
			}
			for _, v := range c.realIP {
				h.Add("X-Real-IP", v)
			}
			if got := sourceAddress(c.peer, h, c.trusted); got.String() != c.want {
				t.Errorf("source %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, false},
		{" 10.1.2.3/8 , 127.0.0.1 ,::1", []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128"}, false},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, false},
		{"10.0.0.0/33", nil, true},
		{"example.com", nil, true},
		{"10.0.0.0/8,nope", nil, true},
	}
	for _, c := range cases {
		got, err := ParseTrustedProxies(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v", c.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if len(s) != len(c.want) {
			t.Errorf("%q: %v, want %v", c.in, s, c.want)
			continue
		}
		for i := range s {
			if s[i] != c.want[i] {
				t.Errorf("%q: %v, want %v", c.in, s, c.want)
			}
		}
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
	} {
		if got := sourceKey(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
