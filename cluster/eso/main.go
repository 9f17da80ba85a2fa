// The External Secrets Operator's controller for the local cluster (scripts/cluster).
// Identical to the module's own main package; the build (scripts/lib/cluster-eso-build.sh)
// swaps the two registry files for overlay/, so only the providers and generators the
// tests use are linked instead of every cloud SDK.
package main

import "github.com/external-secrets/external-secrets/cmd/controller"

func main() {
	controller.Execute()
}
