// Command backend is the example service that `pake build` turns into a
// hardened image: HTTP on port 8000, GET /health answers 200.
//
// It uses the standard library only and is built with CGO_ENABLED=0, so the
// binary is static and the final image can be FROM scratch. Because a
// scratch image has no shell or curl, the binary is also its own health
// check: `backend -healthcheck` GETs http://127.0.0.1:8000/health and exits
// 0 when it answers 200 (the Dockerfile's HEALTHCHECK runs it).
//
// It writes nothing to disk, so it runs on a read-only root filesystem.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// commit is the source revision: GIT_COMMIT from the image (set from the
// build argument of the same name), or -ldflags "-X main.commit=...".
var commit = "unknown"

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /health on the local server and exit 0 if it answers 200")
	get := flag.String("get", "", "GET this URL, print the body, exit 0 if it answers 200 (a client for in-cluster checks: the image has no curl)")
	load := flag.Duration("for", 0, "with -get: GET the URL every 20ms for this long, print a JSON summary (requests, failed, the \"version\" each answer reported, in order of change) and exit 0 if none failed")
	flag.Parse()
	if *get != "" && *load > 0 {
		os.Exit(loadTest(*get, *load))
	}
	if *get != "" {
		os.Exit(fetch(*get))
	}

	if c := os.Getenv("GIT_COMMIT"); c != "" {
		commit = c
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	if *healthcheck {
		os.Exit(check("http://" + net.JoinHostPort("127.0.0.1", port) + "/health"))
	}

	// Fault injection for the real-node tests (tests/realnode.rs): how the kubelet's real
	// failure modes look to pake. Unset in every normal deployment.
	switch os.Getenv("PAKE_EXAMPLE_FAULT") {
	case "write-root":
		// Under readOnlyRootFilesystem this fails with "read-only file system".
		if err := os.WriteFile("/fault-probe", []byte("x"), 0o600); err != nil {
			log.Fatalf("fault write-root: %v", err)
		}
	case "write-app":
		// Writes a directory the image does not make writable: "read-only file system"
		// under readOnlyRootFilesystem, "permission denied" without it (/app is root's,
		// mode 555). Retries for a while before giving up, as a service waiting for its
		// storage does, so the process can be inspected while it logs the error.
		for i := 0; ; i++ {
			err := os.MkdirAll("/app/data", 0o755)
			if err == nil {
				break
			}
			log.Printf("fault write-app: %v", err)
			if i >= 30 {
				log.Fatalf("fault write-app: giving up: %v", err)
			}
			time.Sleep(2 * time.Second)
		}
	case "oom":
		// Touch memory until the container's memory limit kills it (OOMKilled).
		var hog [][]byte
		for {
			b := make([]byte, 8<<20)
			for i := range b {
				b[i] = 1
			}
			hog = append(hog, b)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
	// The version this pod runs: PAKE_VERSION, which pake's Deployment sets from the pod's
	// `version` label (blue-green checks ask it through a Service).
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		host, _ := os.Hostname()
		_ = json.NewEncoder(w).Encode(map[string]string{"version": os.Getenv("PAKE_VERSION"), "pod": host, "commit": commit})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"service": "pake-backend", "commit": commit})
	})

	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("pake-backend %s listening on %s", commit, srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// check returns the process exit code for a health check of url.
func check(url string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}

// fetch GETs url, copies the body to stdout and returns the exit code (0 on 200).
func fetch(url string) int {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "get:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "get: status", resp.StatusCode)
		return 1
	}
	return 0
}

// loadTest GETs url every 20ms for d and prints one JSON line: how many requests, how many
// failed (error or not 200), and the sequence of versions the answers reported (each change
// once), e.g. ["v1","v2"].
func loadTest(url string, d time.Duration) int {
	// A new connection per request, as separate clients would: a kept-alive connection
	// stays with the pod it first reached, whatever the Service selects later.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var requests, failed int
	var versions []string
	var errs []string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		requests++
		resp, err := client.Get(url)
		if err != nil {
			failed++
			errs = append(errs, err.Error())
			continue
		}
		var body struct {
			Version string `json:"version"`
		}
		derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || derr != nil {
			failed++
			errs = append(errs, fmt.Sprintf("status %d %v", resp.StatusCode, derr))
			continue
		}
		if len(versions) == 0 || versions[len(versions)-1] != body.Version {
			versions = append(versions, body.Version)
		}
	}
	if len(errs) > 5 {
		errs = errs[:5]
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"requests": requests, "failed": failed, "versions": versions, "errors": errs})
	if failed > 0 {
		return 1
	}
	return 0
}
