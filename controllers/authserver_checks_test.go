package controllers

import (
	"strings"
	"testing"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func TestParseColorEndpoints(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr string
	}{
		{in: "blue=http://127.0.0.1:8091,green=http://127.0.0.1:8092/"},
		{in: " green=https://g.example.com , blue=http://b.example.com"},
		{in: "blue=http://127.0.0.1:8091", wantErr: "both blue and green"},
		{in: "", wantErr: "want blue=URL"},
		{in: "red=http://a,green=http://b", wantErr: "want blue=URL"},
		{in: "blue=http://a,blue=http://b", wantErr: "given twice"},
		{in: "blue=127.0.0.1:8091,green=http://b", wantErr: "not an absolute"},
		{in: "blue=ftp://a,green=http://b", wantErr: "not an absolute"},
		{in: "blue=http://,green=http://b", wantErr: "not an absolute"},
	} {
		e, err := ParseColorEndpoints(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if strings.HasSuffix(e[authv1alpha1.Blue], "/") || strings.HasSuffix(e[authv1alpha1.Green], "/") {
			t.Errorf("%q: trailing slash kept: %v", tc.in, e)
		}
	}
}

func TestColorEndpointsFollowTheActiveColor(t *testing.T) {
	e := ColorEndpoints{authv1alpha1.Blue: "http://b", authv1alpha1.Green: "http://g"}
	for _, tc := range []struct {
		active        authv1alpha1.Color
		want, preview string
	}{
		{"", "http://b", "http://g"}, // before the first reconcile blue is installed first
		{authv1alpha1.Blue, "http://b", "http://g"},
		{authv1alpha1.Green, "http://g", "http://b"},
	} {
		as := &authv1alpha1.AuthServer{Status: authv1alpha1.AuthServerStatus{ActiveColor: tc.active}}
		if got := e.URL(as, true); got != tc.want {
			t.Errorf("active %q: active URL %s, want %s", tc.active, got, tc.want)
		}
		if got := e.URL(as, false); got != tc.preview {
			t.Errorf("active %q: preview URL %s, want %s", tc.active, got, tc.preview)
		}
	}
}
