/* vmigrate lab guest: dirties a working set at a paced rate and publishes
 * progress at guest-physical 0x101000 for the host to read with HMP `xp`.
 * Cmdline: ws=<MiB> rate=<MiB/s, 0=unlimited> report=<ms, 0=off>.
 * Freestanding i386: no libgcc, so 64-bit division goes through div64_32(). */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;

#define PROGRESS_MAGIC 0x504D4756u /* "VMGP" */
#define WS_BASE 0x00400000u        /* working set starts at 4 MiB, above kernel + mbi */
#define PAGE_WORDS 1024u           /* 4 KiB / 4 */
#define CHUNK 64u                  /* pages per pacing step (256 KiB) */
#define PIT_HZ 1193182u
#define CAL_LATCH 11932u           /* 10 ms of PIT channel 2 */
#define CAL_RUNS 5

/* Layout is the host contract (see src/lab/guest-progress.ts). */
struct progress {
    u64 pages;       /* +0  total pages written (64-bit atomic store) */
    u32 magic;       /* +8  */
    u32 version;     /* +12 */
    u32 ws_pages;    /* +16 effective working set */
    u32 rate_mib;    /* +20 ceiling, 0 = unlimited */
    u32 tsc_khz;     /* +24 calibrated */
    u32 passes;      /* +28 completed passes over the working set */
    u32 uptime_ms;   /* +32 since dirtying started */
    u32 lost_ms;     /* +36 time dropped instead of caught up (throttled/descheduled) */
    u32 state;       /* +40 1 calibrating, 2 running */
};

__attribute__((section(".progress"), aligned(4096)))
volatile struct progress prog = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* Aligned 8-byte x87 store is a single access: the host never sees a torn counter. */
static inline void store64(volatile u64 *p, u64 v)
{
    __asm__ volatile("fildq %1\n\tfistpq %0" : "=m"(*p) : "m"(v) : "memory");
}

/* n / d with two 32-bit divl steps (quotient of the second fits since r < d). */
static u64 div64_32(u64 n, u32 d, u32 *rem)
{
    u32 hi = (u32)(n >> 32), lo = (u32)n, qlo, r;
    u32 qhi = hi / d;
    r = hi % d;
    __asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
    if (rem) *rem = r;
    return ((u64)qhi << 32) | qlo;
}

/* ---- serial (COM1, polled) ---- */
static int serial_on;
static void serial_init(void)
{
    outb(0x3F9, 0x00); outb(0x3FB, 0x80); outb(0x3F8, 0x01); outb(0x3F9, 0x00);
    outb(0x3FB, 0x03); outb(0x3FA, 0xC7); outb(0x3FC, 0x03);
    serial_on = 1;
}
static void putc_(char c)
{
    if (!serial_on) return;
    while (!(inb(0x3FD) & 0x20)) cpu_relax();
    outb(0x3F8, (u8)c);
}
static void puts_(const char *s) { while (*s) { if (*s == '\n') putc_('\r'); putc_(*s++); } }
static void putu(u64 v)
{
    char buf[24];
    int i = 0;
    u32 r;
    do { v = div64_32(v, 10, &r); buf[i++] = (char)('0' + r); } while (v);
    while (i) putc_(buf[--i]);
}

/* ---- cmdline ---- */
static int streq_prefix(const char *s, const char *p) { while (*p) if (*s++ != *p++) return 0; return 1; }
static int parse_u32(const char *s, u32 *out)
{
    u32 v = 0;
    int any = 0;
    while (*s >= '0' && *s <= '9') { v = v * 10 + (u32)(*s++ - '0'); any = 1; }
    if (any && (*s == 0 || *s == ' ')) { *out = v; return 1; }
    return 0;
}
static void parse_cmdline(const char *c, u32 *ws, u32 *rate, u32 *report)
{
    while (c && *c) {
        while (*c == ' ') c++;
        if (streq_prefix(c, "ws=")) parse_u32(c + 3, ws);
        else if (streq_prefix(c, "rate=")) parse_u32(c + 5, rate);
        else if (streq_prefix(c, "report=")) parse_u32(c + 7, report);
        while (*c && *c != ' ') c++;
    }
}

/* ---- TSC vs PIT channel 2 ---- */
static u32 calibrate_tsc_khz(void)
{
    u64 best = ~0ull;
    for (int run = 0; run < CAL_RUNS; run++) {
        outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01)); /* gate on, speaker off */
        outb(0x43, 0xB0);                             /* ch2, lo/hi, mode 0 */
        outb(0x42, CAL_LATCH & 0xff);
        /* Start before the final write: delays can only lengthen a run, so min() is right. */
        u64 t0 = rdtsc();
        outb(0x42, CAL_LATCH >> 8);
        while (!(inb(0x61) & 0x20)) cpu_relax();
        u64 d = rdtsc() - t0;
        if (d < best) best = d;
    }
    /* khz = ticks / (latch / PIT_HZ) / 1000 */
    return (u32)div64_32(best * PIT_HZ, CAL_LATCH * 1000u, 0);
}

struct mb_info { u32 flags, mem_lower, mem_upper, boot_device, cmdline; };

void kmain(u32 magic, const struct mb_info *mbi)
{
    u32 ws_mib = 64, rate = 0, report = 1000;
    u32 top = 0x01000000; /* assume 16 MiB if the loader gave no memory info */

    serial_init();
    prog.magic = PROGRESS_MAGIC;
    prog.version = 1;
    prog.state = 1;
    if (magic == 0x2BADB002u) {
        if (mbi->flags & 1) top = 0x100000u + mbi->mem_upper * 1024u;
        if (mbi->flags & 4) parse_cmdline((const char *)mbi->cmdline, &ws_mib, &rate, &report);
    }
    u32 max_pages = top > WS_BASE + 0x100000u ? (top - WS_BASE - 0x100000u) / 4096u : 0;
    u32 ws_pages = ws_mib > 1048576u / 256u ? max_pages : ws_mib * 256u;
    if (ws_pages > max_pages) ws_pages = max_pages;

    u32 khz = calibrate_tsc_khz();
    if (khz == 0) khz = 1;
    prog.ws_pages = ws_pages;
    prog.rate_mib = rate;
    prog.tsc_khz = khz;

    puts_("vmigrate-guest: ws_pages="); putu(ws_pages);
    puts_(" rate_mib="); putu(rate);
    puts_(" tsc_khz="); putu(khz);
    puts_(" mem_top_kib="); putu(top / 1024u);
    puts_("\n");

    /* One chunk per 0.25 MiB at `rate` MiB/s: 250/rate ms of TSC. */
    u64 tpc = rate ? div64_32((u64)khz * 250u, rate, 0) : 0;
    if (rate && tpc == 0) tpc = 1;
    u64 report_ticks = (u64)khz * report;

    volatile u32 *ws = (volatile u32 *)WS_BASE;
    u32 page = 0, passes = 0;
    u64 total = 0, lost = 0;
    u64 start = rdtsc();
    u64 deadline = start, next_report = start + report_ticks;
    prog.state = 2;

    for (;;) {
        if (ws_pages) {
            for (u32 i = 0; i < CHUNK; i++) {
                ws[page * PAGE_WORDS] = (u32)total + i + 1; /* nonzero: not a zero page */
                if (++page == ws_pages) { page = 0; passes++; }
            }
            total += CHUNK;
            store64(&prog.pages, total);
            prog.passes = passes;
        }
        u64 now = rdtsc();
        if (tpc) {
            deadline += tpc;
            if ((s64)(now - deadline) > (s64)tpc) {
                /* Behind by more than a step (throttled or descheduled): drop the
                 * lost time instead of bursting to catch up. */
                lost += now - deadline;
                deadline = now;
            } else {
                while ((s64)(deadline - now) > 0) { cpu_relax(); now = rdtsc(); }
            }
        } else if (!ws_pages) {
            cpu_relax();
        }
        prog.uptime_ms = (u32)div64_32(now - start, khz, 0);
        prog.lost_ms = (u32)div64_32(lost, khz, 0);
        if (report && (s64)(now - next_report) >= 0) {
            next_report = now + report_ticks;
            puts_("vmg t_ms="); putu(prog.uptime_ms);
            puts_(" pages="); putu(total);
            puts_(" passes="); putu(passes);
            puts_(" lost_ms="); putu(prog.lost_ms);
            puts_("\n");
        }
    }
}
