// pause: the process that holds a pod sandbox's namespaces on the local cluster's real
// node (containerd's sandbox_image). There is no registry to pull registry.k8s.io/pause
// from, so scripts/cluster builds this static binary into a FROM-scratch image. Like the
// upstream pause it sleeps until SIGINT/SIGTERM and, as PID 1 of a shared PID namespace,
// reaps orphaned children.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not PID 1\n")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		default:
			os.Exit(0)
		}
	}
}
