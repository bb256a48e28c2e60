/*
 * libc.c - the guest SDK's tiny freestanding C library.
 *
 * gcc may emit calls to memcpy/memset/memmove/memcmp on its own (struct
 * copies, large initialisers), so these exist under their standard names.
 */
#include "rrtool.h"

/* gcc recognises byte loops as memset/memcpy patterns and would compile
 * memset's own loop into a call to memset (infinite recursion). This turns
 * that transformation off for the functions that implement those patterns. */
#define RR_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

/* ---- String and memory functions ------------------------------------- */

RR_NO_LIBCALLS void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

RR_NO_LIBCALLS void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else if (d > s) {
        /* Copy backwards so an overlapping source is read before written. */
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

RR_NO_LIBCALLS void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

RR_NO_LIBCALLS int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}

RR_NO_LIBCALLS size_t strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

RR_NO_LIBCALLS char *strcpy(char *dst, const char *src)
{
    char *d = dst;
    while ((*d++ = *src++))
        ;
    return dst;
}

/* ---- Console --------------------------------------------------------- */

void rr_write(const char *buf, size_t len)
{
    /* One port write per 4 KiB instead of one per byte: every port access is an
       exit to the host, the slowest thing a guest can do. */
    while (len) {
        size_t n = len < RR_CON_BUF_MAX ? len : RR_CON_BUF_MAX;
        outl(RR_CON_BUF_ADDR, (uint32_t)(uintptr_t)buf);
        outl(RR_CON_BUF_LEN, (uint32_t)n);
        buf += n;
        len -= n;
    }
}

void rr_puts(const char *s)
{
    rr_write(s, strlen(s));
}

/* ---- printf ----------------------------------------------------------
 * One formatter, two sinks: the console (buf == NULL) or a bounded buffer.
 * Console output is gathered in a small buffer and written with rr_write,
 * so a printf costs a couple of exits to the host rather than one per byte. */

struct sink {
    char *buf;  /* NULL: console */
    size_t size;
    size_t len; /* characters produced so far (even if not stored) */
    char con[256];
    size_t con_fill;
};

static void con_flush(struct sink *o)
{
    if (o->con_fill) {
        rr_write(o->con, o->con_fill);
        o->con_fill = 0;
    }
}

static void emit(struct sink *o, char c)
{
    if (!o->buf) {
        o->con[o->con_fill++] = c;
        if (o->con_fill == sizeof o->con)
            con_flush(o);
    } else if (o->len + 1 < o->size) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void emit_n(struct sink *o, char c, int n)
{
    while (n-- > 0)
        emit(o, c);
}

/* Emit a converted field: prefix (sign or "0x"), then digits or text,
 * padded to width. Zero padding goes between the prefix and the digits. */
static void emit_field(struct sink *o, const char *prefix, const char *body, size_t body_len,
                       int width, int left, int zero)
{
    int len = (int)(strlen(prefix) + body_len);
    int pad = width > len ? width - len : 0;
    if (!left && !zero)
        emit_n(o, ' ', pad);
    while (*prefix)
        emit(o, *prefix++);
    if (!left && zero)
        emit_n(o, '0', pad);
    for (size_t i = 0; i < body_len; i++)
        emit(o, body[i]);
    if (left)
        emit_n(o, ' ', pad);
}

/* Digits of v in base 10 or 16, written backwards ending at end. */
static char *utoa(char *end, uint64_t v, unsigned base, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = end;
    do {
        *--p = digits[v % base];
        v /= base;
    } while (v);
    return p;
}

static int format(struct sink *o, const char *fmt, va_list ap)
{
    char num[24]; /* 2^64 has 20 decimal digits */
    char *end = num + sizeof(num);

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(o, *fmt);
            continue;
        }
        const char *start = fmt++;
        int left = 0, zero = 0, width = 0, size = 0; /* size: 0 int, 1 long, 2 long long */

        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                zero = 1;
            else
                break;
        }
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        if (*fmt == 'l') {
            size = 1;
            if (*++fmt == 'l') {
                size = 2;
                fmt++;
            }
        } else if (*fmt == 'z') {
            size = 1; /* size_t is unsigned long on x86-64 */
            fmt++;
        }
        if (left)
            zero = 0;

        uint64_t u;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = size == 2 ? va_arg(ap, long long)
                      : size == 1 ? va_arg(ap, long)
                                  : va_arg(ap, int);
            /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
            u = v < 0 ? -(uint64_t)v : (uint64_t)v;
            char *p = utoa(end, u, 10, 0);
            emit_field(o, v < 0 ? "-" : "", p, (size_t)(end - p), width, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            u = size == 2 ? va_arg(ap, unsigned long long)
              : size == 1 ? va_arg(ap, unsigned long)
                          : va_arg(ap, unsigned int);
            char *p = utoa(end, u, *fmt == 'u' ? 10 : 16, *fmt == 'X');
            emit_field(o, "", p, (size_t)(end - p), width, left, zero);
            break;
        }
        case 'p': {
            char *p = utoa(end, (uintptr_t)va_arg(ap, void *), 16, 0);
            emit_field(o, "0x", p, (size_t)(end - p), width, left, zero);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            emit_field(o, "", s, strlen(s), width, left, 0);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            emit_field(o, "", &c, 1, width, left, 0);
            break;
        }
        case '%':
            emit(o, '%');
            break;
        default:
            /* Unsupported conversion: print it verbatim so the bug is visible. */
            while (start <= fmt && *start)
                emit(o, *start++);
            if (!*fmt)
                fmt--; /* format ended mid-conversion; let the loop stop */
            break;
        }
    }
    return (int)o->len;
}

int rr_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    /* A sink with buf == NULL means "console", so an empty buffer still
     * needs a non-NULL pointer; size 0 stores nothing through it. */
    static char dummy;
    struct sink o = { size ? buf : &dummy, size, 0, {0}, 0 };
    int n = format(&o, fmt, ap);
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return n;
}

int rr_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = rr_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int rr_vprintf(const char *fmt, va_list ap)
{
    struct sink o = { NULL, 0, 0, {0}, 0 };
    int n = format(&o, fmt, ap);
    con_flush(&o);
    return n;
}

int rr_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = rr_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* ---- Interrupts ------------------------------------------------------ */

static rr_irq_fn irq_handlers[RR_IRQ_LINES];
static int irq_vector_set;

void rr_irq_init(void)
{
    uint64_t entry = (uint64_t)(uintptr_t)rr_irq_entry;
    outl(RR_IRQ_VECTOR_LO, (uint32_t)entry);
    outl(RR_IRQ_VECTOR_HI, (uint32_t)(entry >> 32)); /* HI commits */
    irq_vector_set = 1;
}

static void irq_enable_line(int line)
{
    if (!irq_vector_set)
        rr_irq_init();
    outl(RR_IRQ_ENABLE, inl(RR_IRQ_ENABLE) | (1u << line));
}

void rr_irq_handler(int line, rr_irq_fn fn)
{
    if (line < 0 || line >= RR_IRQ_LINES)
        return;
    irq_handlers[line] = fn; /* before enabling, so it is never seen unset */
    irq_enable_line(line);
}

void rr_irq_disable(int line)
{
    if (line < 0 || line >= RR_IRQ_LINES)
        return;
    outl(RR_IRQ_ENABLE, inl(RR_IRQ_ENABLE) & ~(1u << line));
}

/* Called from rr_irq_entry with IF clear. Each line is acknowledged before
 * its handler runs, so an event arriving during the handler pends again and
 * is delivered after iretq instead of being lost. Lines without a handler
 * (e.g. timer 3 used by rr_sleep_ns) are just acknowledged: their only job
 * is to wake a hlt. */
void rr_irq_dispatch(void)
{
    uint32_t todo = inl(RR_IRQ_PENDING) & inl(RR_IRQ_ENABLE);
    for (int line = 0; todo; line++, todo >>= 1) {
        if (!(todo & 1u))
            continue;
        outl(RR_IRQ_PENDING, 1u << line);
        if (line < RR_IRQ_LINES && irq_handlers[line])
            irq_handlers[line](line);
    }
}

int rr_wait_until(uint64_t deadline_ns, int (*ready)(void *arg), void *arg)
{
    int armed = 0, is_ready = 0;
    if (deadline_ns != RR_FOREVER) {
        irq_enable_line(RR_IRQ_TIMER(RR_SLEEP_TIMER));
        rr_timer_oneshot(RR_SLEEP_TIMER, deadline_ns);
        armed = 1;
    }
    /* cli; check; sti;hlt - the check runs with interrupts off, so the
     * event cannot arrive between the check and the hlt and be missed.
     * Unrelated interrupts also wake the hlt; the loop then halts again. */
    for (;;) {
        rr_cli();
        if (ready && ready(arg)) {
            is_ready = 1;
            break;
        }
        if (armed && rr_clock_ns() >= deadline_ns)
            break;
        rr_wait_for_interrupt();
    }
    if (armed && is_ready)
        rr_timer_cancel(RR_SLEEP_TIMER); /* no stray wakeup later */
    rr_sti();
    return is_ready;
}

void rr_sleep_ns(uint64_t ns)
{
    rr_wait_until(rr_clock_ns() + ns, NULL, NULL);
}

/* ---- Exit ------------------------------------------------------------ */

void rr_exit(int code)
{
    outl(RR_EXIT, (uint32_t)code);
    /* The run ends at the EXIT write; should the host ever resume us,
     * stay parked rather than run off into whatever follows. */
    for (;;)
        __asm__ volatile("cli; hlt");
}

void rr_reset(void)
{
    outl(RR_SYS_RESET, 1);
    /* The restart happens at the next instruction boundary the host
     * stops at; park until then, like rr_exit. */
    for (;;)
        __asm__ volatile("cli; hlt");
}
