package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PinnedThreads returns, for each thread of process pid that the kernel
// lets run on one CPU alone, that CPU (its Cpus_allowed_list in
// /proc/PID/task/TID/status), in the order of the threads' IDs. A thread
// that ends meanwhile is left out.
func PinnedThreads(pid int) ([]int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var cpus []int
	for _, e := range ents {
		st, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				if cpu, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					cpus = append(cpus, cpu)
				}
			}
		}
	}
	return cpus, nil
}
