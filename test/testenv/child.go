package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"time"
)

// Child is a process started by a local tool (hack/localcluster,
// hack/benchscale); it dies with its parent even if the parent is killed
// without a chance to stop it.
type Child struct {
	Name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartChild starts bin with args, its output to out, and waits until
// readyURL answers 2xx (within 60 s), the process exits, or ctx ends.
func StartChild(ctx context.Context, name, readyURL string, out io.Writer, bin string, args ...string) (*Child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()
	if err := waitReady(ctx, name, readyURL, c.exited); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Exited is closed when the process has exited.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Pid is the process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stop asks the process to shut down (SIGTERM) and kills it if it has not
// within 35 s; it returns once the process has exited.
func (c *Child) Stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(35 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// waitReady polls url until it answers 2xx, the process exits, or ctx ends.
func waitReady(ctx context.Context, name, url string, exited <-chan struct{}) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted before the %s was ready", name)
		case <-exited:
			return fmt.Errorf("the %s exited before it was ready", name)
		case <-deadline:
			return fmt.Errorf("the %s was not ready at %s within 60s", name, url)
		case <-tick.C:
			resp, err := http.Get(url)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
	}
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1 (free when
// returned: a port can still be taken before it is used).
func FreePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
