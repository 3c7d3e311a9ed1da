package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/datapath"
)

// sample is one configuration's measurements in one round.
type sample struct {
	round  int
	config string
	// tcpGbps is iperf3's TCP throughput, received, in Gbit/s.
	tcpGbps float64
	// conns is the connection generator's account: connections per
	// second completed (connect, 16 bytes each way, close).
	conns connResult
	// ct is a stateful configuration's tracker and drop counts after the
	// run; nil for the others.
	ct *ctReport
	// udpPps is iperf3's small-packet UDP rate (-l 18 -b 0), received.
	udpPps float64
	// flowsPps is the rate received from the harness's many-flow UDP
	// sender (flowPorts destination ports).
	flowsPps float64
	// xskPps is the rate received from the AF_XDP sender (1,000 flows).
	xskPps float64
	// paced is the AF_XDP sender again at paceShare of xskPps, with what
	// the kernel dropped meanwhile (configurations that count it only).
	paced pacedRun
	// rttAvg and rttP99 are ping's RTTs in µs.
	rttAvg, rttP99 float64
	// pingCPU is the machine's busy time during the ping test, in percent
	// of one CPU: what keeping the RTT down costs (a busy-polling thread
	// holds a CPU whether or not packets come).
	pingCPU float64
	// cpuPerMpkt is the forwarder's CPU seconds per million packets
	// during the iperf3 UDP test (see cpuSeconds).
	cpuPerMpkt float64
	// cpu splits cpuPerMpkt: the forwarding process's user and system
	// time and the machine's softirq time, per million packets.
	cpu cpuTimes
	// counters is the forwarder's own account of the run, if it has
	// one.
	counters string
	// perBatch and busyNs are the poll threads' average batch size and
	// busy time per packet over the run (ovsxdp only).
	perBatch, busyNs float64
	err              string
}

// kernelDrops are the frames the kernel side of a forwarder's AF_XDP
// sockets dropped before the forwarder saw them.
type kernelDrops struct{ ringFull, noFrame uint64 }

func (k kernelDrops) minus(o kernelDrops) kernelDrops {
	return kernelDrops{k.ringFull - o.ringFull, k.noFrame - o.noFrame}
}

func (k kernelDrops) total() uint64 { return k.ringFull + k.noFrame }

// userHZ is the unit of /proc's CPU times.
const userHZ = 100

// procCPU is a process's utime and stime (all threads) in seconds.
func procCPU(pid int) (user, sys float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u / userHZ, st / userHZ, nil
}

// machineCPU is the machine's softirq time and its busy time (user,
// nice, system, irq and softirq: everything but idle, iowait and steal)
// in seconds, all CPUs.
func machineCPU() (softirq, busy float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat field %d: %w", i, err)
		}
	}
	return v[7] / userHZ, (v[1] + v[2] + v[3] + v[6] + v[7]) / userHZ, nil
}

// cpuTimes is what every configuration is charged for forwarding, in
// seconds: the user and system time of the forwarding process (ovsxdp's,
// this process, or ovs-vswitchd), if there is one, and the machine's
// softirq time, where the kernel forwards (bridge, XDP) and where the
// AF_XDP sockets and veths of every configuration do their kernel work.
// The kernel's tick accounting charges softirq work that runs in a
// process's context (when a system call re-enables bottom halves) to
// both the process's system time and the machine's softirq time, so the
// total counts that work twice for a forwarding process. machine is the
// machine's busy time, which counts everything once, the endpoints'
// work and any other load included.
type cpuTimes struct{ user, sys, softirq, machine float64 }

func (c cpuTimes) total() float64 { return c.user + c.sys + c.softirq }

// readCPU reads the machine's times and the sum of the user and system
// times of the forwarding processes pids (0 stands for none).
func readCPU(pids ...int) (c cpuTimes, err error) {
	if c.softirq, c.machine, err = machineCPU(); err != nil {
		return c, err
	}
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		u, s, err := procCPU(pid)
		if err != nil {
			return c, err
		}
		c.user, c.sys = c.user+u, c.sys+s
	}
	return c, nil
}

// iperf3 runs the iperf3 client in namespace a against the server on b
// and returns its JSON report.
func iperf3(ctx context.Context, t *topo, d time.Duration, extra ...string) (map[string]any, error) {
	args := append([]string{"netns", "exec", t.a, "iperf3", "-c", t.ipB, "-J", "-t", strconv.Itoa(int(d.Seconds()))}, extra...)
	c := exec.CommandContext(ctx, "ip", args...)
	out, err := c.Output()
	var rep map[string]any
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		return nil, fmt.Errorf("iperf3 %s: %v (%v): %.300s", strings.Join(extra, " "), err, jerr, out)
	}
	if e, ok := rep["error"].(string); ok {
		return nil, fmt.Errorf("iperf3 %s: %s", strings.Join(extra, " "), e)
	}
	if err != nil {
		return nil, fmt.Errorf("iperf3 %s: %w", strings.Join(extra, " "), err)
	}
	return rep, nil
}

// jnum reads a number at path in an iperf3 report.
func jnum(rep map[string]any, path ...string) (float64, error) {
	var v any = rep
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return 0, fmt.Errorf("iperf3 report: no %s", strings.Join(path, "."))
		}
		v = m[k]
	}
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("iperf3 report: %s is %v", strings.Join(path, "."), v)
	}
	return f, nil
}

// measureTCP returns iperf3's received TCP throughput in Gbit/s.
func measureTCP(ctx context.Context, t *topo, d time.Duration) (float64, error) {
	rep, err := iperf3(ctx, t, d)
	if err != nil {
		return 0, err
	}
	bps, err := jnum(rep, "end", "sum_received", "bits_per_second")
	return bps / 1e9, err
}

// measureUDP runs iperf3 with 18-byte UDP payloads at full speed and
// returns the rate b received (iperf3's receiver count over its
// duration) and the CPU seconds per million packets forwarded, charging
// the forwarding processes pids.
func measureUDP(ctx context.Context, t *topo, d time.Duration, pids ...int) (pps float64, cpu cpuTimes, err error) {
	rxA0, err := t.rxPacketsA()
	if err != nil {
		return 0, cpu, err
	}
	udpB0, err := t.udpInB()
	if err != nil {
		return 0, cpu, err
	}
	cpu0, err := readCPU(pids...)
	if err != nil {
		return 0, cpu, err
	}
	rep, err := iperf3(ctx, t, d, "-u", "-l", "18", "-b", "0")
	if err != nil {
		return 0, cpu, err
	}
	cpu1, err := readCPU(pids...)
	if err != nil {
		return 0, cpu, err
	}
	rxA1, err := t.rxPacketsA()
	if err != nil {
		return 0, cpu, err
	}
	udpB1, err := t.udpInB()
	if err != nil {
		return 0, cpu, err
	}
	sent, err1 := jnum(rep, "end", "sum", "packets")
	lost, err2 := jnum(rep, "end", "sum", "lost_packets")
	secs, err3 := jnum(rep, "end", "sum", "seconds")
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, cpu, err
	}
	if secs <= 0 {
		return 0, cpu, fmt.Errorf("iperf3 UDP: %v seconds", secs)
	}
	// The packets forwarded: what a's end received, and the datagrams
	// that reached b's UDP layer (b's end may receive a GSO packet
	// standing for several datagrams, which its device counts as one).
	fwd := float64((rxA1 - rxA0) + (udpB1 - udpB0))
	if fwd == 0 {
		return 0, cpu, errors.New("iperf3 UDP: no packet forwarded")
	}
	m := fwd / 1e6
	cpu = cpuTimes{user: (cpu1.user - cpu0.user) / m, sys: (cpu1.sys - cpu0.sys) / m, softirq: (cpu1.softirq - cpu0.softirq) / m,
		machine: (cpu1.machine - cpu0.machine) / m}
	return (sent - lost) / secs, cpu, nil
}

// measureFlows runs the many-flow sender in a for d and returns the rate
// b received.
func measureFlows(ctx context.Context, t *topo, d time.Duration) (float64, error) {
	received, _, err := runSender(ctx, t, "flood sender", floodRole, t.ipB, d.String())
	return received, err
}

// runSender runs this program in namespace a in the given role (a sender
// that prints "sent N in SECONDS"), and returns the rates at which b's
// peer received packets and the sender sent them over the sender's run.
func runSender(ctx context.Context, t *topo, what, role string, args ...string) (received, sent float64, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	sink, err := startUDPSink(t) // sink.go
	if err != nil {
		return 0, 0, err
	}
	defer sink.Close()
	rx0, err := t.rxPacketsB()
	if err != nil {
		return 0, 0, err
	}
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", t.a, exe, role}, args...)...).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", what, err, out)
	}
	// Frames still in flight arrive within a few milliseconds.
	time.Sleep(50 * time.Millisecond)
	rx1, err := t.rxPacketsB()
	if err != nil {
		return 0, 0, err
	}
	var n int
	var secs float64
	if _, err := fmt.Sscanf(string(out), "sent %d in %g", &n, &secs); err != nil || secs <= 0 {
		return 0, 0, fmt.Errorf("%s output %q: %v", what, out, err)
	}
	return float64(rx1-rx0) / secs, float64(n) / secs, nil
}

var pingTime = regexp.MustCompile(`time=([\d.]+) ms`)

// measurePing sends n pings 10ms apart from a to b and returns the
// average and 99th percentile RTT in µs, and the machine's busy time
// meanwhile in percent of one CPU. It fails if fewer than three in four
// pings were answered.
func measurePing(ctx context.Context, t *topo, n int) (avg, p99, cpuPct float64, err error) {
	_, busy0, err := machineCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", t.a, "ping", "-n", "-c", strconv.Itoa(n), "-i", "0.01", "-W", "1", t.ipB).CombinedOutput()
	wall := time.Since(start)
	ms := pingTime.FindAllStringSubmatch(string(out), -1)
	if 4*len(ms) < 3*n {
		return 0, 0, 0, fmt.Errorf("ping: %d replies of %d (%v): %.300s", len(ms), n, err, out)
	}
	_, busy1, err := machineCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	cpuPct = 100 * (busy1 - busy0) / wall.Seconds()
	rtts := make([]float64, len(ms))
	sum := 0.0
	for i, m := range ms {
		v, _ := strconv.ParseFloat(m[1], 64)
		rtts[i] = v * 1000
		sum += rtts[i]
	}
	slices.Sort(rtts)
	idx := int(math.Ceil(0.99*float64(len(rtts)))) - 1
	return sum / float64(len(rtts)), rtts[idx], cpuPct, nil
}

// floodRole is the first argument that makes the binary the many-flow
// sender.
const floodRole = "-vethbench-flood"

// flood sends 18-byte UDP payloads to dst, cycling over flowPorts
// destination ports and 8 source sockets, as fast as one thread can, for
// duration d, and prints how many it sent and in how long.
func flood(dst string, d time.Duration) error {
	ip, err := netip.ParseAddr(dst)
	if err != nil {
		return err
	}
	var conns []*net.UDPConn
	for range 8 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			return err
		}
		defer c.Close()
		conns = append(conns, c)
	}
	payload := make([]byte, 18)
	start := time.Now()
	end := start.Add(d)
	sent := 0
	for i := 0; ; i++ {
		if i%1024 == 0 && time.Now().After(end) {
			break
		}
		to := netip.AddrPortFrom(ip, uint16(flowPortBase+i%flowPorts))
		if _, err := conns[i%len(conns)].WriteToUDPAddrPort(payload, to); err != nil {
			if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			return err
		}
		sent++
	}
	fmt.Printf("sent %d in %g\n", sent, time.Since(start).Seconds())
	return nil
}

// wakeLatency is how long a thread that asks to sleep 1 µs is away, and
// how long a thread blocked in poll(2) takes to run after another CPU
// wakes it.
type wakeLatency struct {
	slack     time.Duration
	samples   int
	avgMicros float64
	// crossSamples, crossAvg and crossMedian describe the wake-ups
	// from another CPU (none on a machine with one CPU).
	crossSamples          int
	crossAvg, crossMedian float64
}

// lockNapThread locks the calling goroutine to its OS thread and gives
// the thread the timer slack of ovsxdp's napping poll thread, so that its
// nanosleeps overrun as little as the poll thread's naps.
func lockNapThread() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(datapath.NapTimerSlack), 0, 0, 0); err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	return nil
}

// measureWakeLatency times short sleeps with the timer slack of ovsxdp's
// napping poll thread: on a virtual machine a wake-up costs tens of
// microseconds, which every sleeping forwarder pays and a busy-polling one
// does not.
func measureWakeLatency() wakeLatency {
	const n = 2000
	done := make(chan wakeLatency)
	go func() {
		// The thread's timer slack changes: it ends with the goroutine.
		if err := lockNapThread(); err != nil {
			done <- wakeLatency{}
			return
		}
		ts := unix.NsecToTimespec(int64(time.Microsecond))
		start := time.Now()
		for range n {
			unix.Nanosleep(&ts, nil) //nolint:errcheck // EINTR: a shorter sleep
		}
		done <- wakeLatency{slack: datapath.NapTimerSlack, samples: n, avgMicros: float64(time.Since(start).Microseconds()) / n}
	}()
	w := <-done
	w.crossSamples, w.crossAvg, w.crossMedian = measureCrossWake(1000)
	return w
}

// measureCrossWake wakes a thread blocked in poll(2) on CPU 1 from a
// thread on CPU 0, n times 1 ms apart (so that CPU 1 goes idle between
// them), as the kernel wakes a sleeping poll thread when a frame arrives
// on another CPU, and returns how many wake-ups it timed and the average
// and median time from the eventfd write to the woken thread running, in
// µs. It returns 0s on a machine with one CPU or if a step fails.
func measureCrossWake(n int) (samples int, avg, median float64) {
	if runtime.NumCPU() < 2 {
		return 0, 0, 0
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, 0, 0
	}
	defer unix.Close(efd)
	pin := func(cpu int) bool {
		// The thread's affinity changes: it ends with the goroutine.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		return unix.SchedSetaffinity(0, &set) == nil
	}
	var written atomic.Int64 // time.Since(base) of the last write, ns
	base := time.Now()
	lat := make(chan []float64)
	go func() {
		if !pin(1) {
			lat <- nil
			return
		}
		fds := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
		var buf [8]byte
		var out []float64
		for len(out) < n {
			k, err := unix.Poll(fds, 1000)
			if err == unix.EINTR {
				continue
			}
			if err != nil || k == 0 {
				break // the writer stopped
			}
			woke := time.Since(base).Nanoseconds()
			unix.Read(efd, buf[:]) //nolint:errcheck // drained; EAGAIN is harmless
			out = append(out, float64(woke-written.Load())/1e3)
		}
		lat <- out
	}()
	go func() {
		if !pin(0) {
			return
		}
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		for range n {
			time.Sleep(time.Millisecond)
			written.Store(time.Since(base).Nanoseconds())
			if _, err := unix.Write(efd, one); err != nil {
				return
			}
		}
	}()
	out := <-lat
	if len(out) == 0 {
		return 0, 0, 0
	}
	slices.Sort(out)
	sum := 0.0
	for _, v := range out {
		sum += v
	}
	return len(out), sum / float64(len(out)), out[len(out)/2]
}
