//go:build linux

package testenv

import "syscall"

// setParentDeathSignal makes the kernel kill the child if the test binary dies without running its cleanups
// (a panic or a `go test -timeout` kill), so no Azurite outlives it.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
