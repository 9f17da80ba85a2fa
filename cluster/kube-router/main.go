// kube-router's network policy controller alone (github.com/cloudnativelabs/kube-router/v2,
// pkg/controllers/netpol: iptables + ipset), for the local cluster's real node. It runs as a
// host process inside the node's network namespace (scripts/cluster), so its iptables chains
// and ipsets are that namespace's. This wrapper does what kube-router's own command does with
// --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false,
// without linking the BGP router, the IPVS service proxy or the cloud SDKs: the same options
// and flags, the same informers, the health controller (heartbeats and /healthz), no metrics.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/spf13/pflag"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() { os.Exit(run()) }

func run() int {
	config := options.NewKubeRouterConfig()
	fs := pflag.NewFlagSet("kube-router-netpol", pflag.ContinueOnError)
	config.AddFlags(fs)
	klog.InitFlags(nil)
	fs.AddGoFlagSet(flag.CommandLine) // klog's -v, -vmodule, ...
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if config.HelpRequested {
		fs.PrintDefaults()
		return 0
	}
	if config.Kubeconfig == "" || config.HostnameOverride == "" {
		fmt.Fprintln(os.Stderr, "kube-router-netpol: --kubeconfig and --hostname-override are required")
		return 2
	}
	// Only the firewall, whatever the flags say.
	config.RunFirewall = true
	config.RunRouter = false
	config.RunServiceProxy = false
	config.RunLoadBalancer = false
	config.MetricsEnabled = false
	config.MetricsPort = 0

	restConfig, err := clientcmd.BuildConfigFromFlags("", config.Kubeconfig)
	if err != nil {
		klog.Errorf("kubeconfig %s: %v", config.Kubeconfig, err)
		return 1
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		klog.Errorf("client: %v", err)
		return 1
	}
	if err := runFirewall(client, config); err != nil {
		klog.Errorf("%v", err)
		return 1
	}
	return 0
}

func runFirewall(client kubernetes.Interface, config *options.KubeRouterConfig) error {
	var ipsetMutex sync.Mutex
	var wg sync.WaitGroup
	healthChan := make(chan *healthcheck.ControllerHeartbeat, 10)
	stopCh := make(chan struct{})

	hc, err := healthcheck.NewHealthController(config)
	if err != nil {
		return fmt.Errorf("health controller: %w", err)
	}
	wg.Add(1)
	go hc.RunServer(stopCh, &wg)

	factory := informers.NewSharedInformerFactory(client, 0)
	podInformer := factory.Core().V1().Pods().Informer()
	nsInformer := factory.Core().V1().Namespaces().Informer()
	npInformer := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(stopCh)
	synced := make(chan struct{})
	go func() { factory.WaitForCacheSync(stopCh); close(synced) }()
	select {
	case <-synced:
	case <-signalled():
		close(stopCh)
		return nil
	}
	hc.SetAlive()
	wg.Add(1)
	go hc.RunCheck(healthChan, stopCh, &wg)

	iptablesHandlers, ipsetHandlers, err := netpol.NewIPTablesHandlers(config)
	if err != nil {
		return fmt.Errorf("iptables handlers: %w", err)
	}
	npc, err := netpol.NewNetworkPolicyController(client, config, podInformer, npInformer, nsInformer,
		&ipsetMutex, iptablesHandlers, ipsetHandlers)
	if err != nil {
		return fmt.Errorf("network policy controller: %w", err)
	}
	if _, err := podInformer.AddEventHandler(npc.PodEventHandler); err != nil {
		return fmt.Errorf("pod event handler: %w", err)
	}
	if _, err := nsInformer.AddEventHandler(npc.NamespaceEventHandler); err != nil {
		return fmt.Errorf("namespace event handler: %w", err)
	}
	if _, err := npInformer.AddEventHandler(npc.NetworkPolicyEventHandler); err != nil {
		return fmt.Errorf("network policy event handler: %w", err)
	}
	wg.Add(1)
	go npc.Run(healthChan, stopCh, &wg)

	<-signalled()
	klog.Info("shutting down the network policy controller")
	close(stopCh)
	wg.Wait()
	return nil
}

var sigOnce sync.Once
var sigCh chan os.Signal

func signalled() <-chan os.Signal {
	sigOnce.Do(func() {
		sigCh = make(chan os.Signal, 1)
		signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
	})
	return sigCh
}
