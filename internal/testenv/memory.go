package testenv

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PeakSampler records the peak heap in use and the peak resident set size of the process while it runs
// (benchmarks' memory figures). Start it with StartPeakSampler and read Heap and RSS after Stop.
type PeakSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	Heap uint64 // written by the sampling goroutine; read after Stop
	RSS  uint64 // written by the sampling goroutine; read after Stop
}

// StartPeakSampler starts sampling every 20 ms; Stop ends it and waits for its goroutine.
func StartPeakSampler() *PeakSampler {
	p := &PeakSampler{stop: make(chan struct{})}
	p.done.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			p.Heap = max(p.Heap, ms.HeapInuse)
			p.RSS = max(p.RSS, RSS())
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	})
	return p
}

// Stop ends the sampling and waits for it.
func (p *PeakSampler) Stop() { close(p.stop); p.done.Wait() }

// RSS reads the process's resident set size from /proc (0 where there is none).
func RSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
