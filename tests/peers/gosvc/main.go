// gosvc — the shared real Go service for leakwatch's tests.
//
// It serves net/http/pprof on /debug/pprof/ and offers endpoints that create
// the leak patterns leakwatch must find (see the field note in the seed):
// goroutines blocked forever on a channel nobody sends to, and small
// substrings pinning whole 1 MiB strings. It can also retain and release a
// known number of bytes (for exact heap diffs), churn (allocate and free,
// start short-lived goroutines) without leaking, and burn CPU (for CPU
// profiles).
//
// The functions that appear in profiles have fixed names (blockedForever,
// leakGoroutines, makeBigString, leakSubstring, retainBuffers, burnCPU) and
// are marked //go:noinline so they stay frames of their own; tests look for
// them by name. GET /spread?depth=D retains one object from each of 4^D
// distinct stacks, for large realistic heap profiles (benchmarks).
//
// Go's heap profile describes the heap as of the last completed GC, so by
// default a background loop churns and runs a GC every -churn-every
// (200ms); endpoints that change the live heap run runtime.GC() themselves
// before answering, so a profile fetched afterwards already reflects them.
//
// Only the standard library is used (go 1.19), so the tests can build it
// with Debian's golang-go and no network.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bigStringBytes is the size of each string built by makeBigString: the
// seed's substring leak keeps 50 bytes of it and pins all of it.
const bigStringBytes = 1 << 20

// retainedSlots is the preallocated capacity of retained.
const retainedSlots = 4096

var (
	// mu guards the package-level state below.
	mu sync.Mutex
	// leakedSubstrings holds s[:50] of every string made by leakSubstring;
	// each entry keeps its whole 1 MiB backing array alive.
	leakedSubstrings []string
	// retained holds the buffers of retainBuffers until /release. Its
	// backing array is allocated once up front and reused, so that (for up
	// to retainedSlots buffers) the only allocations retainBuffers makes are
	// the buffers themselves and a heap diff shows exactly n*size bytes.
	retained = make([][]byte, 0, retainedSlots)
	// retainedBytes is the sum of len() over retained.
	retainedBytes int64
	// churnSink defeats escape analysis so churn really allocates.
	churnSink []byte
)

// blockedForever waits on a channel nobody ever sends to: the goroutine
// leak. Its frame is what a goroutine profile shows as the leaking stack.
//
//go:noinline
func blockedForever(ch chan int) {
	<-ch
}

// leakGoroutines starts n goroutines that never end and returns the new
// total number of goroutines.
//
//go:noinline
func leakGoroutines(n int) int {
	before := parkedInBlockedForever()
	ch := make(chan int) // never sent to, never closed
	for i := 0; i < n; i++ {
		go blockedForever(ch)
	}
	// Answer only once every new goroutine is parked in its receive, so a
	// goroutine profile taken right after shows all n with the same stack
	// (a goroutine that has not run yet has a different, one-frame stack).
	deadline := time.Now().Add(5 * time.Second)
	for parkedInBlockedForever() < before+n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return runtime.NumGoroutine()
}

// parkedInBlockedForever counts goroutines blocked in blockedForever's
// channel receive, from the runtime's own goroutine dump.
func parkedInBlockedForever() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan receive") && strings.Contains(g, "main.blockedForever(") {
			count++
		}
	}
	return count
}

// makeBigString builds a fresh bigStringBytes string on the heap (one
// allocation of exactly that size, made by strings.Builder.Grow).
//
//go:noinline
func makeBigString(seed int) string {
	var b strings.Builder
	b.Grow(bigStringBytes)
	c := byte('a' + seed%26)
	for i := 0; i < bigStringBytes; i++ {
		b.WriteByte(c)
	}
	return b.String()
}

// leakSubstring keeps the first 50 bytes of n fresh big strings; because a
// substring shares its parent's memory, each keeps the whole 1 MiB alive.
//
//go:noinline
func leakSubstring(n int) int {
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		s := makeBigString(len(leakedSubstrings))
		leakedSubstrings = append(leakedSubstrings, s[:50])
	}
	return len(leakedSubstrings)
}

// retainBuffers allocates n buffers of size bytes each and keeps them until
// releaseBuffers. Sizes that are a Go size class (e.g. 4096, 65536) or a
// multiple of 8192 above 32 KiB are exact in heap profiles.
//
//go:noinline
func retainBuffers(n, size int) {
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		b[0] = 1
		retained = append(retained, b)
		retainedBytes += int64(size)
	}
}

// releaseBuffers drops every retained buffer.
func releaseBuffers() {
	mu.Lock()
	defer mu.Unlock()
	for i := range retained {
		retained[i] = nil // the backing array is kept; drop its references
	}
	retained = retained[:0]
	retainedBytes = 0
}

// spreadSink keeps the objects allocated by spread.
var spreadSink [][]byte

// spread allocates one 64-byte object from each of 4^depth distinct call
// stacks (every level calls one of spreadA..spreadD) and keeps them: it
// makes large, realistic heap profiles for benchmarks (depth 8 gives 65536
// stacks).
//
//go:noinline
func spread(depth, path int) {
	if depth == 0 {
		b := make([]byte, 64)
		mu.Lock()
		spreadSink = append(spreadSink, b)
		mu.Unlock()
		return
	}
	for i := 0; i < 4; i++ {
		switch i {
		case 0:
			spreadA(depth-1, path*4)
		case 1:
			spreadB(depth-1, path*4+1)
		case 2:
			spreadC(depth-1, path*4+2)
		default:
			spreadD(depth-1, path*4+3)
		}
	}
}

//go:noinline
func spreadA(depth, path int) { spreadLeaf(depth, path) }

//go:noinline
func spreadB(depth, path int) { spreadLeaf(depth, path) }

//go:noinline
func spreadC(depth, path int) { spreadLeaf(depth, path) }

//go:noinline
func spreadD(depth, path int) { spreadLeaf(depth, path) }

// spreadLeaf either recurses or allocates; separate so that every level
// adds exactly one distinguishing frame (spreadA..D) plus this one.
//
//go:noinline
func spreadLeaf(depth, path int) {
	if depth == 0 {
		b := make([]byte, 64)
		mu.Lock()
		spreadSink = append(spreadSink, b)
		mu.Unlock()
		return
	}
	spread(depth, path)
}

// churn allocates and frees memory and runs short-lived goroutines; it
// leaks nothing.
//
//go:noinline
func churn() {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 1024*(i+1))
			buf[0] = byte(i)
			mu.Lock()
			churnSink = buf
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	mu.Lock()
	churnSink = nil
	mu.Unlock()
}

// burnCPU keeps one goroutine busy forever, so CPU profiles have samples.
//
//go:noinline
func burnCPU() {
	x := uint64(1)
	for {
		for i := 0; i < 1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if x == 0 { // never true; keeps x live
			fmt.Fprintln(os.Stderr, x)
		}
	}
}

// intParam reads a non-negative integer query parameter, def when absent.
func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

func writeRetained(w http.ResponseWriter) {
	mu.Lock()
	body := map[string]int64{"retained_bytes": retainedBytes, "retained_objects": int64(len(retained))}
	mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func handleLeakGoroutine(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d\n", leakGoroutines(n))
}

func handleLeakSubstring(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	total := leakSubstring(n)
	runtime.GC()
	fmt.Fprintf(w, "%d\n", total)
}

func handleRetain(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", 1)
	if err == nil {
		var size int
		size, err = intParam(r, "size", 4096)
		if err == nil {
			retainBuffers(n, size)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	runtime.GC()
	writeRetained(w)
}

func handleRelease(w http.ResponseWriter, r *http.Request) {
	releaseBuffers()
	runtime.GC()
	writeRetained(w)
}

func handleChurn(w http.ResponseWriter, r *http.Request) {
	churn()
	fmt.Fprintln(w, "ok")
}

func handleSpread(w http.ResponseWriter, r *http.Request) {
	depth, err := intParam(r, "depth", 6)
	if err == nil && depth > 10 {
		err = fmt.Errorf("depth: at most 10, got %d", depth)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	spread(depth, 0)
	runtime.GC()
	fmt.Fprintf(w, "%d\n", 1<<(2*depth))
}

func handleGC(w http.ResponseWriter, r *http.Request) {
	runtime.GC()
	fmt.Fprintln(w, "ok")
}

func main() {
	addr := flag.String("addr", "", "listen address, e.g. 127.0.0.1:8080 (required)")
	memProfileRate := flag.Int("memprofilerate", -1, "runtime.MemProfileRate to set at start (1 = every allocation); -1 leaves Go's default")
	leakEvery := flag.Duration("leak-every", 0, "leak one unit of -leak every DURATION with no traffic (0 = off)")
	leakKind := flag.String("leak", "goroutine", "what -leak-every leaks: goroutine or substring")
	churnEvery := flag.Duration("churn-every", 200*time.Millisecond, "background churn and GC every DURATION, so the heap profile stays fresh (0 = off)")
	cpuBurn := flag.Bool("cpu-burn", false, "keep one goroutine busy in burnCPU (for CPU profiles)")
	flag.Parse()

	if *addr == "" {
		fmt.Fprintln(os.Stderr, "gosvc: -addr is required")
		os.Exit(2)
	}
	if *leakKind != "goroutine" && *leakKind != "substring" {
		fmt.Fprintf(os.Stderr, "gosvc: -leak must be goroutine or substring, got %q\n", *leakKind)
		os.Exit(2)
	}
	if *memProfileRate >= 0 {
		// Must be set as early as possible: it applies to allocations made
		// after this point.
		runtime.MemProfileRate = *memProfileRate
	}

	if *leakEvery > 0 {
		go func(kind string, every time.Duration) {
			for range time.Tick(every) {
				if kind == "goroutine" {
					leakGoroutines(1)
				} else {
					leakSubstring(1)
				}
			}
		}(*leakKind, *leakEvery)
	}
	if *churnEvery > 0 {
		go func(every time.Duration) {
			for range time.Tick(every) {
				churn()
				runtime.GC()
			}
		}(*churnEvery)
	}
	if *cpuBurn {
		go burnCPU()
	}

	http.HandleFunc("/leak/goroutine", handleLeakGoroutine)
	http.HandleFunc("/leak/substring", handleLeakSubstring)
	http.HandleFunc("/retain", handleRetain)
	http.HandleFunc("/release", handleRelease)
	http.HandleFunc("/churn", handleChurn)
	http.HandleFunc("/gc", handleGC)
	http.HandleFunc("/spread", handleSpread)
	log.Printf("gosvc: listening on %s (pid %d)", *addr, os.Getpid())
	log.Fatal(http.ListenAndServe(*addr, nil))
}
