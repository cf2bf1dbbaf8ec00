// heapgen writes large real Go heap profiles for the diff and ingest
// benchmarks: with runtime.MemProfileRate = 1 every allocation is recorded,
// and allocations come from up to 9^5 = 59049 distinct call stacks (five
// levels of nine dispatch functions), so a profile has as many samples as
// stacks were used.
//
// Usage: heapgen -out DIR [-sizes 1000,5000,33000] [-series K] [-b 33000]
//
// For each size N (ascending) it allocates from stacks [0, N) (keeping the
// objects live), runs a GC and writes DIR/heap-N.pb.gz. With -series K it
// then writes K more profiles DIR/series-I.pb.gz of the same stacks, each
// after one more object on every 50th stack and freeing those of every
// 97th (a large service scraped again and again). With -b M it then
// frees the objects of the first M/8 stacks, allocates from stacks
// [M/8, M/8 + M) (new stacks beyond the last size, more objects on every
// 7th stack), and writes DIR/heap-b.pb.gz: the "after" of a diff whose
// "before" is DIR/heap-<largest size>.pb.gz.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
)

func init() { runtime.MemProfileRate = 1 }

var retained = map[int][][]byte{}

const depth = 5

var fns [9]func(d, k int)

func digit(k, d int) int {
	for i := 1; i < d; i++ {
		k /= 9
	}
	return k % 9
}

//go:noinline
func step(d, k int) {
	if d == 0 {
		leaf(k)
		return
	}
	fns[digit(k, d)](d-1, k)
}

//go:noinline
func leaf(k int) {
	b := make([]byte, 16+(k*37)%1000)
	b[0] = byte(k)
	retained[k] = append(retained[k], b)
}

//go:noinline
func f0(d, k int) { step(d, k) }

//go:noinline
func f1(d, k int) { step(d, k) }

//go:noinline
func f2(d, k int) { step(d, k) }

//go:noinline
func f3(d, k int) { step(d, k) }

//go:noinline
func f4(d, k int) { step(d, k) }

//go:noinline
func f5(d, k int) { step(d, k) }

//go:noinline
func f6(d, k int) { step(d, k) }

//go:noinline
func f7(d, k int) { step(d, k) }

//go:noinline
func f8(d, k int) { step(d, k) }

func write(path string) {
	runtime.GC()
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "heapgen:", err)
		os.Exit(1)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "heapgen:", err)
		os.Exit(1)
	}
	f.Close()
	fmt.Println(path)
}

func main() {
	fns = [9]func(d, k int){f0, f1, f2, f3, f4, f5, f6, f7, f8}
	out := flag.String("out", "", "output directory (required)")
	sizesArg := flag.String("sizes", "1000,5000,33000", "stack counts of the profiles to write")
	series := flag.Int("series", 0, "profiles of the largest size to write after small changes")
	bArg := flag.Int("b", 33000, "stack count of the second diff profile (0 = none)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: heapgen -out DIR [-sizes N,N] [-b N]")
		os.Exit(2)
	}
	var sizes []int
	for _, s := range strings.Split(*sizesArg, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 59049 {
			fmt.Fprintln(os.Stderr, "heapgen: bad size", s)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)
	done := 0
	for _, n := range sizes {
		for k := done; k < n; k++ {
			step(depth, k)
		}
		done = n
		write(filepath.Join(*out, fmt.Sprintf("heap-%d.pb.gz", n)))
	}
	for i := 1; i <= *series; i++ {
		for k := 0; k < done; k++ {
			if k%50 == i%50 {
				step(depth, k)
			}
			if k%97 == i%97 {
				delete(retained, k)
			}
		}
		write(filepath.Join(*out, fmt.Sprintf("series-%02d.pb.gz", i)))
	}
	if *bArg > 0 {
		lo := *bArg / 8
		if lo+*bArg > 59049 {
			fmt.Fprintln(os.Stderr, "heapgen: -b too large")
			os.Exit(2)
		}
		for k := 0; k < lo; k++ {
			delete(retained, k)
		}
		for k := lo; k < lo+*bArg; k++ {
			if k >= done || k%7 == 0 {
				step(depth, k)
			}
		}
		write(filepath.Join(*out, "heap-b.pb.gz"))
	}
}
