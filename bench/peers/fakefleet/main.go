// fakefleet simulates a fleet of Go services for the scale benchmark: one
// process listening on N loopback ports (one per simulated target), each
// serving /debug/pprof/goroutine and /debug/pprof/heap as gzipped pprof
// protobufs, like net/http/pprof.
//
// The fleet shares one code base (a few hundred functions in realistic
// package paths); each target uses its own subset of the goroutine and heap
// stacks with its own values, which drift slowly with time (a few percent
// over minutes), and one target in ten leaks: its goroutine count and
// in-use heap grow linearly. Profiles are encoded by hand (no dependency
// outside the standard library) with the same layout as runtime/pprof:
// one mapping, one location per (function, line), functions with file names.
//
// Usage: fakefleet -n 1000 -ports FILE [-goroutine-stacks 40] [-heap-stacks 150]
// writes the listening ports (one per line) to FILE once all are open.
// Requests are counted per profile and printed on SIGTERM/SIGINT.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- a minimal protobuf writer ---------------------------------------------

type pb struct{ b []byte }

func (p *pb) varint(x uint64) {
	for x >= 0x80 {
		p.b = append(p.b, byte(x)|0x80)
		x >>= 7
	}
	p.b = append(p.b, byte(x))
}

func (p *pb) key(field, wire int) { p.varint(uint64(field<<3 | wire)) }

func (p *pb) int(field int, x int64) {
	if x == 0 {
		return
	}
	p.key(field, 0)
	p.varint(uint64(x))
}

func (p *pb) bytes(field int, b []byte) {
	p.key(field, 2)
	p.varint(uint64(len(b)))
	p.b = append(p.b, b...)
}

func (p *pb) str(field int, s string) {
	p.key(field, 2)
	p.varint(uint64(len(s)))
	p.b = append(p.b, s...)
}

func (p *pb) packed(field int, xs []uint64) {
	var q pb
	for _, x := range xs {
		q.varint(x)
	}
	p.bytes(field, q.b)
}

// ---- the fleet's code base -------------------------------------------------

type frame struct {
	fn   int // index into funcs
	line int64
}

type stack []frame

var funcs []string
var files []string

func rng(seed uint64) func() uint64 {
	x := seed*0x9e3779b97f4a7c15 + 1
	return func() uint64 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
}

func makeCodeBase() {
	pkgs := []string{"api", "auth", "billing", "cache", "db", "grpc", "http2", "kafka", "metrics",
		"orders", "queue", "router", "search", "session", "storage", "users"}
	for _, p := range pkgs {
		for t := 0; t < 4; t++ {
			for m := 0; m < 6; m++ {
				funcs = append(funcs, fmt.Sprintf("github.com/acme/shop/internal/%s.(*%s%d).Method%d", p, strings.Title(p), t, m))
				files = append(files, fmt.Sprintf("/src/shop/internal/%s/%s%d.go", p, p, t))
			}
		}
	}
	for _, f := range []string{"runtime.gopark", "runtime.chanrecv1", "runtime.selectgo", "runtime.goexit",
		"net/http.(*conn).serve", "net/http.(*Server).Serve", "internal/poll.(*FD).Read",
		"net.(*conn).Read", "bufio.(*Reader).fill", "sync.(*WaitGroup).Wait", "time.Sleep",
		"runtime.mallocgc", "runtime.makeslice", "bytes.(*Buffer).grow", "encoding/json.Marshal",
		"strings.(*Builder).grow", "runtime.newobject", "main.main"} {
		funcs = append(funcs, f)
		files = append(files, "/usr/lib/go/src/"+strings.SplitN(f, ".", 2)[0]+".go")
	}
}

func makeStacks(n int, seed uint64, leafs []int) []stack {
	r := rng(seed)
	nApp := len(funcs) - 18
	out := make([]stack, n)
	for i := range out {
		d := 6 + int(r()%12)
		s := stack{{fn: leafs[int(r()%uint64(len(leafs)))], line: int64(10 + r()%400)}}
		for j := 1; j < d; j++ {
			s = append(s, frame{fn: int(r() % uint64(nApp)), line: int64(10 + r()%400)})
		}
		s = append(s, frame{fn: len(funcs) - 4, line: 1}) // runtime.goexit-ish root
		out[i] = s
	}
	return out
}

var goroutineStacks, heapStacks []stack

// ---- profiles ---------------------------------------------------------------

type sampleSet struct {
	types  [][2]string
	period [3]interface{}
	stacks []stack
	values [][]int64
}

func encode(s *sampleSet, now time.Time) []byte {
	strs := map[string]int64{"": 0}
	table := []string{""}
	si := func(v string) int64 {
		if i, ok := strs[v]; ok {
			return i
		}
		strs[v] = int64(len(table))
		table = append(table, v)
		return int64(len(table) - 1)
	}
	var p pb
	for _, t := range s.types {
		var q pb
		q.int(1, si(t[0]))
		q.int(2, si(t[1]))
		p.bytes(1, q.b)
	}
	locs := map[frame]uint64{}
	var locOrder []frame
	fnIDs := map[int]uint64{}
	var fnOrder []int
	for i, st := range s.stacks {
		ids := make([]uint64, len(st))
		for j, f := range st {
			id, ok := locs[f]
			if !ok {
				id = uint64(len(locOrder) + 1)
				locs[f] = id
				locOrder = append(locOrder, f)
				if _, ok := fnIDs[f.fn]; !ok {
					fnIDs[f.fn] = uint64(len(fnOrder) + 1)
					fnOrder = append(fnOrder, f.fn)
				}
			}
			ids[j] = id
		}
		var q pb
		q.packed(1, ids)
		vs := make([]uint64, len(s.values[i]))
		for j, v := range s.values[i] {
			vs[j] = uint64(v)
		}
		q.packed(2, vs)
		p.bytes(2, q.b)
	}
	{
		var q pb
		q.int(1, 1)
		q.int(2, 0x400000)
		q.int(3, 0x1400000)
		q.int(5, si("/usr/local/bin/shop"))
		q.int(7, 1)
		p.bytes(3, q.b)
	}
	for i, f := range locOrder {
		var q pb
		q.int(1, int64(i+1))
		q.int(2, 1)
		q.int(3, int64(0x400000+uint64(f.fn)*0x1000+uint64(f.line)*4))
		var l pb
		l.int(1, int64(fnIDs[f.fn]))
		l.int(2, f.line)
		q.bytes(4, l.b)
		p.bytes(4, q.b)
	}
	for i, fn := range fnOrder {
		var q pb
		q.int(1, int64(i+1))
		q.int(2, si(funcs[fn]))
		q.int(3, si(funcs[fn]))
		q.int(4, si(files[fn]))
		p.bytes(5, q.b)
	}
	pt := s.period
	var q pb
	q.int(1, si(pt[0].(string)))
	q.int(2, si(pt[1].(string)))
	ptb := q.b
	for _, v := range table {
		p.str(6, v)
	}
	p.int(9, now.UnixNano())
	p.bytes(11, ptb)
	p.int(12, pt[2].(int64))
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(p.b)
	zw.Close()
	return buf.Bytes()
}

var start = time.Now()

// drift: a slow relative variation of a few percent, different per stack.
func drift(target, i int, t float64) float64 {
	return 1 + 0.05*math.Sin(t/240+float64(target*7+i))
}

func goroutineProfile(target int, now time.Time) []byte {
	t := now.Sub(start).Seconds()
	r := rng(uint64(target) + 17)
	s := &sampleSet{types: [][2]string{{"goroutine", "count"}}, period: [3]interface{}{"goroutine", "count", int64(1)}}
	for i, st := range goroutineStacks {
		if r()%5 == 0 {
			continue
		}
		base := 1 + float64(r()%20)
		v := int64(math.Round(base * drift(target, i, t)))
		if target%10 == 3 && i == 0 {
			v += int64(t / 6) // the leak: 10 goroutines a minute
		}
		if v < 1 {
			v = 1
		}
		s.stacks = append(s.stacks, st)
		s.values = append(s.values, []int64{v})
	}
	return encode(s, now)
}

func heapProfile(target int, now time.Time) []byte {
	t := now.Sub(start).Seconds()
	r := rng(uint64(target) + 91)
	s := &sampleSet{
		types:  [][2]string{{"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}},
		period: [3]interface{}{"space", "bytes", int64(524288)},
	}
	for i, st := range heapStacks {
		if r()%4 == 0 {
			continue
		}
		size := int64(16 << (r() % 10))
		inuse := int64(float64(1+r()%200) * drift(target, i, t))
		allocs := inuse + int64(t*float64(1+r()%50))
		if target%10 == 3 && i < 3 {
			inuse += int64(t * 2) // the leak
			allocs += int64(t * 2)
		}
		s.stacks = append(s.stacks, st)
		s.values = append(s.values, []int64{allocs, allocs * size, inuse, inuse * size})
	}
	return encode(s, now)
}

var nGoroutine, nHeap atomic.Int64

func main() {
	n := flag.Int("n", 1000, "number of simulated targets (ports)")
	portsFile := flag.String("ports", "", "write the ports here, one per line (required)")
	nGoroutineStacks := flag.Int("goroutine-stacks", 40, "distinct goroutine stacks of the code base")
	nHeapStacks := flag.Int("heap-stacks", 150, "distinct heap stacks of the code base")
	flag.Parse()
	if *portsFile == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: fakefleet -n N -ports FILE")
		os.Exit(2)
	}
	makeCodeBase()
	leafG := []int{len(funcs) - 18, len(funcs) - 17, len(funcs) - 16, len(funcs) - 12, len(funcs) - 8}
	leafH := []int{len(funcs) - 7, len(funcs) - 6, len(funcs) - 5, len(funcs) - 3, len(funcs) - 2}
	goroutineStacks = makeStacks(*nGoroutineStacks, 1, leafG)
	heapStacks = makeStacks(*nHeapStacks, 2, leafH)
	var ports []string
	for i := 0; i < *n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakefleet:", err)
			os.Exit(1)
		}
		target := i
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/goroutine", func(w http.ResponseWriter, r *http.Request) {
			nGoroutine.Add(1)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(goroutineProfile(target, time.Now()))
		})
		mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
			nHeap.Add(1)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(heapProfile(target, time.Now()))
		})
		go http.Serve(ln, mux)
		ports = append(ports, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	if err := os.WriteFile(*portsFile, []byte(strings.Join(ports, "\n")+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fakefleet:", err)
		os.Exit(1)
	}
	fmt.Printf("fakefleet: %d targets listening\n", *n)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	fmt.Printf("fakefleet: requests goroutine=%d heap=%d\n", nGoroutine.Load(), nHeap.Load())
}
