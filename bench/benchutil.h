/* benchutil.h — small helpers shared by the benchmark programs (bench/ programs): sorting timings and telling how
 * busy the rest of the machine was during a measurement (the project's machine has 2 shared cores). */
#ifndef LS_BENCHUTIL_H
#define LS_BENCHUTIL_H

#include <stdio.h>
#include <sys/resource.h>

/* qsort comparator for doubles (ascending) */
static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU seconds the whole machine has been busy (all processes), or -1 where /proc/stat is unreadable */
static inline double machine_busy(void) {
    unsigned long long u, n, sy, idle, io, irq, sirq, steal;
    FILE *f = fopen("/proc/stat", "r");
    int ok = f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &sy, &idle, &io, &irq, &sirq,
                         &steal) == 8;
    if (f) fclose(f);
    return ok ? (double)(u + n + sy + irq + sirq + steal) / 100.0 : -1.0; /* USER_HZ: 100 on Linux */
}

/* CPU seconds used by this process */
static inline double self_cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + 1e-6 * (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

#endif
