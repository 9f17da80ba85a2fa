// kube-network-policies (sigs.k8s.io/kube-network-policies) for the local cluster's real
// node, run as a host process: the upstream cmd only reads the in-cluster config and
// uses a fixed nftables table name. This wrapper takes a kubeconfig, a per-instance
// table name and nfqueue number (so that the nodes of two local clusters never share
// state), disables NRI (containerd 1.6 has none) and serves no metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() { os.Exit(run()) }

func run() int {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the node's identity")
	nodeName := flag.String("hostname-override", "", "name of the Node whose pods this process enforces")
	table := flag.String("nftables-table", "kube-network-policies", "nftables table (inet family) owned by this process")
	queueID := flag.Int("nfqueue-id", 100, "nfqueue number (the DNS cache uses the next one)")
	failOpen := flag.Bool("fail-open", false, "accept packets while the controller is not running")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		fmt.Fprintln(os.Stderr, "kube-network-policies: --kubeconfig and --hostname-override are required")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer cancel()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Errorf("kubeconfig %s: %v", *kubeconfig, err)
		return 1
	}
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Errorf("client: %v", err)
		return 1
	}
	factory := informers.NewSharedInformerFactory(clientset, 0)
	cfg := networkpolicy.Config{
		FailOpen:            *failOpen,
		QueueID:             *queueID,
		NodeName:            *nodeName,
		NetfilterBug1766Fix: true,
		NFTableName:         *table,
		NRIdisabled:         true,
	}
	controller, err := networkpolicy.NewController(
		clientset,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil,
		cfg,
	)
	if err != nil {
		klog.Errorf("network policy controller: %v", err)
		return 1
	}
	errc := make(chan error, 1)
	go func() { errc <- controller.Run(ctx) }()
	factory.Start(ctx.Done())
	select {
	case <-ctx.Done():
		// The controller removes its table when its context ends.
		time.Sleep(2 * time.Second)
		return 0
	case err := <-errc:
		if err != nil {
			klog.Errorf("network policy controller stopped: %v", err)
			return 1
		}
		return 0
	}
}
