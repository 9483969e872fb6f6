/* How often does this CPU go away? (bench/emit.sh, issue 6)
 *
 * Spins on CLOCK_MONOTONIC for SECONDS and writes every interval in which the loop did not
 * run for more than 1 us (the thread lost the CPU: a guest interrupt, the hypervisor taking
 * the vCPU, a preempting task) as "start_ns duration_ns" lines to OUT. A pacer that spins
 * to its deadlines cannot send during those intervals, whatever its rule; cpu_bound.py
 * turns them into the best IAT error any spinning sender could reach on this CPU.
 *
 *   taskset -c 0 cpu_probe SECONDS OUT
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: cpu_probe SECONDS OUT\n"); return 2; }
    double secs = atof(argv[1]);
    FILE *out = fopen(argv[2], "w");
    if (!out || secs <= 0) { perror(argv[2]); return 2; }
    size_t cap = 1 << 20, n = 0;
    uint64_t *gap = malloc(cap * 2 * sizeof *gap);
    if (!gap) return 2;
    uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), prev = start;
    for (;;) {
        uint64_t t = now_ns();
        if (t - prev > 1000 && n < cap) { gap[2 * n] = prev - start; gap[2 * n + 1] = t - prev; n++; }
        prev = t;
        if (t > end) break;
    }
    fprintf(out, "# cpu_probe %.3f s\n", secs);
    for (size_t i = 0; i < n; i++) fprintf(out, "%llu %llu\n", (unsigned long long)gap[2 * i], (unsigned long long)gap[2 * i + 1]);
    fclose(out);
    return 0;
}
